from infou_feedback.main import run

run()
