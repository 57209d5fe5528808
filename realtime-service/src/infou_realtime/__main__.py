from infou_realtime.main import run

run()
