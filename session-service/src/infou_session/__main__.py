from infou_session.main import run

run()
