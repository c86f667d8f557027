deny contains {"id": "x.y", "msg": "z"} if true
