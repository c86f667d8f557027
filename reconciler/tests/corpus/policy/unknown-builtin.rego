package cupcake

deny contains {"id": "u.b", "msg": "x"} if explode(1)
