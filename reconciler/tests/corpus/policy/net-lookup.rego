package cupcake

deny contains {"id": "net.dns", "msg": sprintf("%v", [net.lookup_ip_addr("example.com")])} if true
