package cupcake

deny contains {"id": "type.add", "msg": "x"} if {
  n := input.cluster.name + 1
  n > 0
}
