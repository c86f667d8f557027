package cupcake

deny contains {"msg": "who am I"} if true
