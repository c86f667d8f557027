package cupcake

deny contains {"id": "math.div", "msg": sprintf("%v", [1 / 0])} if true
