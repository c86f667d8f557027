package cupcake

# café
