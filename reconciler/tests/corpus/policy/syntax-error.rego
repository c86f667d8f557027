package cupcake

deny contains f if {
  f := {"id": "x", "msg": "y"
