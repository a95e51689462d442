#!/usr/bin/env bash
# Mutation testing of zmq_green's core with mutmut 3 (.venv/bin/pip install mutmut).
#
# Mutates zmq_green/_waiting.py, socket.py, poll.py and context.py in a copy of the
# tree under $MUTATION_WORK (default /tmp/zmq_green-mutation), never in the tree
# itself: mutmut writes its mutants/ there. Each mutant runs only the tests of the
# selection below that call the mutated function (-x, a 10 s per-test timeout
# unless a test asks for more), in a child of a fork server (gevent is not
# fork-safe), $MUTATION_CHILDREN at a time (default 1; 2 on two otherwise idle
# cores). A hung mutant fails its test by that timeout.
#
#   tools/mutation.sh                              all four modules
#   tools/mutation.sh 'zmq_green._waiting.*'       a subset, by mutant name glob
#
# Then: cd "$MUTATION_WORK" && PYTHONPATH=plugins mutmut results (or: mutmut show NAME).
# A full run makes 1147 mutants and takes well over an hour on two shared cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${MUTATION_WORK:-/tmp/zmq_green-mutation}
rm -rf "$work"
mkdir -p "$work"
cd "$root"
tar --exclude=__pycache__ -cf - zmq_green tests setup.cfg setup.py pyproject.toml | tar -xf - -C "$work"
# mutmut records calls in a ContextVar, which crashes (SIGSEGV) when greenlets switch
# inside the recorded calls: a plain holder does instead (it only serves to name callers).
mkdir -p "$work/plugins"
cat >"$work/plugins/mutmut_plain_callstack.py" <<'PY'
from mutmut.core import MutmutCallStack


class _Plain:
    value = (None, 0)

    def get(self):
        return self.value

    def set(self, value):
        token, self.value = self.value, value
        return token

    def reset(self, token):
        self.value = token


MutmutCallStack._ctx = _Plain()
PY
export PYTHONPATH="$work/plugins${PYTHONPATH:+:$PYTHONPATH}"
cat >>"$work/pyproject.toml" <<'TOML'

[tool.mutmut]
source_paths = ["zmq_green"]
only_mutate = ["zmq_green/_waiting.py", "zmq_green/socket.py", "zmq_green/poll.py", "zmq_green/context.py"]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-p", "mutmut_plain_callstack", "--timeout=10"]
pytest_add_cli_args_test_selection = [
    "tests/test_socket.py", "tests/test_readiness.py", "tests/test_wakeups.py", "tests/test_clock.py",
    "tests/test_poll.py", "tests/test_context.py", "tests/test_context_term.py", "tests/test_mutants.py",
    "tests/test_idle_receive.py",
]
process_isolation = "forkserver"
forkserver_warmup = "none"
timeout_multiplier = 3.0
use_git_change_detection = false
track_dependencies = false
TOML
cd "$work"
"$root/.venv/bin/mutmut" run --max-children "${MUTATION_CHILDREN:-1}" "$@"
"$root/.venv/bin/mutmut" results
