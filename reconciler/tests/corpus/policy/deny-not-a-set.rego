package cupcake

deny := 42
