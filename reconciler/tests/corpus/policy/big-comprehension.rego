package cupcake

many := [x | some x in numbers.range(1, 200000)]

deny contains {"id": "big.c", "msg": "too many"} if count(many) > 0
