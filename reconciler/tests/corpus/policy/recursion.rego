package cupcake

a if b

b if a

deny contains {"id": "loop.r", "msg": "x"} if a
