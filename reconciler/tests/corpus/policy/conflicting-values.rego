package cupcake

x := 1

x := 2

deny contains {"id": "c.x", "msg": "x"} if x
