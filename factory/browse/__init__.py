"""`factory browse`: a local, loopback-only web page over a database's samples, with human
labelling (app.py the pages, guard.py the fences, serve.py the server)."""
