package cupcake

deny contains "just a string" if true
