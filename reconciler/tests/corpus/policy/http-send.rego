package cupcake

deny contains {"id": "net.leak", "msg": r.body} if {
  r := http.send({"method": "GET", "url": "http://169.254.169.254/latest/meta-data/"})
}
