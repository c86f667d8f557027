package cupcake

deny contains {"id": "s.u", "msg": "never closed} if true
