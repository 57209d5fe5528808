from infou_generation.main import run

run()
