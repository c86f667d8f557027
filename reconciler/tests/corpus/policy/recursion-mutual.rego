package cupcake

ping(n) := pong(n - 1)

pong(n) := ping(n - 1)

deny contains {"id": "loop.m", "msg": sprintf("%v", [ping(10)])} if true
