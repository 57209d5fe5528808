from infou_catalog.main import run

run()
