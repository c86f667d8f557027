package cupcake

upgrading := false
