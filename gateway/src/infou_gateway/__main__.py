from infou_gateway.main import run

run()
