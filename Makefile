# TTMS developer entry points. Where a Docker engine answers, `make up` runs compose.yaml;
# elsewhere the local launcher (launcher/) runs every process against the local
# RabbitMQ and MariaDB, which `deps` starts, or installs on Debian, when they do not answer.
#   make up | down | logs | migrate | test | lint | bench | chaos | compose-check | screenshots

SHELL := /bin/bash
PY := .venv/bin/python
# Reinstall only when a requirements file is newer than the last install.
STAMP := .venv/.installed

.PHONY: deps venv wrk chromium cluster-deps up down logs mail migrate test lint bench chaos compose-check screenshots \
	cluster-up cluster-down cluster-status chaos-cluster

deps:
	python3 -m launcher deps

venv: $(STAMP)

$(STAMP): $(wildcard requirements*.txt) pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	touch $@

# up, down and logs go to compose when a Docker engine answers, else to the local launcher.
up:
	@if docker info >/dev/null 2>&1; then \
		docker compose up -d --wait && echo "TTMS is up: http://127.0.0.1:8080  (web app: http://127.0.0.1:8080/)"; \
	else \
		$(MAKE) -s --no-print-directory deps venv && $(PY) -m launcher up; \
	fi

down:
	@if docker info >/dev/null 2>&1; then docker compose down; \
	else python3 -m launcher down; fi

logs:
	@if docker info >/dev/null 2>&1; then docker compose logs --tail 50; \
	else python3 -m launcher logs; fi

# The mail the local SMTP sink of `make up` kept (run/mail/*.eml).
mail: venv
	@$(PY) -m user_svc.mailsink --list

migrate: deps venv
	$(PY) -m migrations upgrade

# The tests start their own processes in their own namespace; no `make up` needed.
test: deps venv wrk chromium
	.venv/bin/ruff check .
	$(PY) -m pytest -q

lint: venv
	.venv/bin/ruff check .

# The benchmark runs against a system started by `make up` (it starts one if /readyz fails).
# BENCH_ARGS passes options, e.g. make bench BENCH_ARGS="--seconds 30 --note 'two gateways'".
bench: deps venv wrk
	@curl -sf -o /dev/null http://127.0.0.1:$${TTMS_GATEWAY_PORT:-8080}/readyz || $(MAKE) -s --no-print-directory up
	$(PY) -m bench $(BENCH_ARGS)

# wrk, the load generator (Debian package), installed when missing and we are root.
wrk:
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null 2>&1 || \
		  { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }; }; }
	@command -v wrk >/dev/null || { echo "wrk is missing: install Debian's wrk package" >&2; exit 1; }

# What the local clusters need besides RabbitMQ and MariaDB themselves: Debian's haproxy and
# galera-4, installed when missing and we are root. Starts nothing.
cluster-deps:
	@{ command -v haproxy >/dev/null || test -x /usr/sbin/haproxy; } && test -e /usr/lib/galera/libgalera_smm.so || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy galera-4 >/dev/null 2>&1 || \
		  { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy galera-4 >/dev/null; }; }; }
	@{ command -v haproxy >/dev/null || test -x /usr/sbin/haproxy; } || { echo "haproxy is missing: install Debian's haproxy package" >&2; exit 1; }
	@test -e /usr/lib/galera/libgalera_smm.so || { echo "Galera is missing: install Debian's galera-4 package" >&2; exit 1; }
	@test -x /usr/lib/rabbitmq/bin/rabbitmq-server && test -x /usr/sbin/mariadbd || \
		{ echo "rabbitmq-server and mariadb-server are missing: \`make deps\` installs them" >&2; exit 1; }

# Three RabbitMQ nodes, three Galera nodes and HAProxy on loopback ports (data in .cluster/),
# then TTMS against them (two processes of everything; gateway on 127.0.0.1:18090).
# launcher/cluster.py has the layout; `cluster-down` stops all of it and removes .cluster/.
# The default RabbitMQ (5672) and MariaDB (3306) are neither needed nor touched.
cluster-up: venv cluster-deps
	$(PY) -m launcher.cluster up

cluster-down:
	python3 -m launcher.cluster down

cluster-status:
	python3 -m launcher.cluster status

# Faults under load on that cluster (starts it afresh, stops it at the end); appends to
# chaos/RESULTS.md. CHAOS_ARGS as for `make chaos`.
chaos-cluster: venv cluster-deps
	$(PY) -m chaos --cluster $(CHAOS_ARGS)

# Headless Chromium for the browser tests (Debian package), installed when missing and we are root.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
		  { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; }; }
	@command -v chromium >/dev/null || { echo "chromium is missing: install Debian's chromium package" >&2; exit 1; }

# The README's screenshots (docs/screenshots/), taken by the browser tests.
screenshots: deps venv chromium
	TTMS_SCREENSHOTS=1 $(PY) -m pytest -q tests/browser

# Faults under load in its own namespace (ttms_chaos); appends a dated section to chaos/RESULTS.md.
# It restarts the shared RabbitMQ and freezes MariaDB 10 s; CHAOS_ARGS=--skip-shared leaves
# those out. CHAOS_ARGS passes options, e.g. make chaos CHAOS_ARGS="--seconds 30 --only kill".
chaos: deps venv
	$(PY) -m chaos $(CHAOS_ARGS)

# Validates compose.yaml without a Docker engine: the structure test, which also runs
# `docker compose config -q` when the CLI has the compose plugin (it needs no engine).
compose-check: venv
	$(PY) -m pytest -q -rs -p no:cacheprovider --noconftest tests/test_compose.py
