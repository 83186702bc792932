# Shortcuts around run.sh (which also works without make).
.PHONY: run test bench package
run:
	./run.sh
test:
	./run.sh test
bench:
	.venv/bin/python main.py bench detection
package:
	bash packaging/build.sh
