package cupcake

f(x) := f(x + 1)

deny contains {"id": "loop.f", "msg": sprintf("%v", [f(1)])} if true
