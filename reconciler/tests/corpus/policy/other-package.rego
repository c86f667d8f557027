package evil

deny contains {"id": "evil.always", "msg": "never seen"} if true
