# cllama — one plain Makefile.
#
#   make            build build/release/cllama
#   make deps       install missing Debian packages (apt-get; sudo when not root)
#   make serve      deps, then build + run the server on 127.0.0.1:11434
#   make test       deps, then build + every test (unit, integration, golden, fuzz replay)
#   make test-neon  kernel checks for aarch64 under qemu (part of `make test`)
#
# `serve`, `test` and `bench` install the packages first and only then run a
# second make for the rest: that make reads this file again, so what it
# finds on disk (/usr/share/llhttp/*.c) is what the install put there, and no
# compile runs while apt-get does (make -j2 test).
#   make check      the test suite under ASan+UBSan (build/check/)
#   make tsan       the test suite under ThreadSanitizer (build/tsan/)
#   make fuzz       libFuzzer targets (clang), run each for FUZZ_SECONDS
#   make bench      build the programs in bench/
#   make clean
#
# Flags are assembled from named parts so any one can be overridden:
#   make WARN= OPT=-O0 CC=clang
MODE    ?= release
CC      ?= cc
BUILD   := build/$(MODE)

STD     := -std=c11 -D_GNU_SOURCE
WARN    ?= -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-unused-parameter -Wvla
WERROR  ?=
ifeq ($(MODE),release)
OPT     ?= -O2 -g
SAN     :=
else ifeq ($(MODE),check)
OPT     ?= -O1 -g -fno-omit-frame-pointer
SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
else ifeq ($(MODE),tsan)
OPT     ?= -O1 -g
SAN     := -fsanitize=thread
else ifeq ($(MODE),fuzz)
CC      := clang
OPT     ?= -O1 -g
SAN     := -fsanitize=fuzzer-no-link,address,undefined
else ifeq ($(MODE),clang)
CC      := clang
OPT     ?= -O2 -g
SAN     :=
else ifeq ($(MODE),debug)
OPT     ?= -O0 -g
SAN     :=
endif

# Debian packages the build and tests need (checked by `make deps`).
APT_PKGS := build-essential pkg-config libuv1-dev libjansson-dev \
            libcurl4-openssl-dev libblis-dev node-llhttp libssl-dev \
            libpcre2-dev libicu-dev libcriterion-dev curl python3
# Optional (`make deps-optional`, best effort, part of `make test`): clang
# (CI's second compiler, `make fuzz`), the aarch64 cross-compiler and qemu
# for `make test-neon`, node for the JS client tests, Prometheus' Python
# client for test_api_metrics' parse of /metrics, HAProxy for the
# three-instance routing test (test_cli_haproxy), clang-format for
# `make format` / `make format-check`. Without them those
# checks say SKIP; npm is never installed (Debian's conflicts with other
# node builds): `make js-deps` uses it when it is there.
OPT_PKGS := clang gcc-aarch64-linux-gnu qemu-user nodejs python3-prometheus-client haproxy \
            clang-format
# Only for the programs in bench/ (`make bench-deps`).
BENCH_PKGS := wrk gnuplot-nox

LLHTTP_SRC := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp

DEPS_CFLAGS := -I$(LLHTTP_INC)
DEPS_LIBS   := -luv -ljansson -lcurl -lblis -lssl -lcrypto -lpcre2-8 -licuuc -licudata -lm -lpthread
INC         := -Iinclude -Isrc

CFLAGS_ALL  = $(STD) $(WARN) $(WERROR) $(OPT) $(SAN) $(INC) $(DEPS_CFLAGS) \
              -MMD -MP $(CFLAGS)
LDFLAGS_ALL = $(SAN) $(LDFLAGS)

ARCH := $(shell uname -m)
# Per-ISA kernel files: only these objects get ISA flags (dispatch picks at run time).
ISA_avx2   := -mavx2 -mfma -mf16c
ISA_avx512 := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq \
              -mavx512vnni -mavx512bf16
ISA_neon   :=
ISA_neon_dotprod := -march=armv8.2-a+dotprod

LIB_SRC  := $(shell find src -name '*.c' ! -path 'src/main.c' ! -path 'src/cli/*' | sort)
CLI_SRC  := src/main.c $(sort $(wildcard src/cli/*.c))
LLHTTP_C := $(wildcard $(LLHTTP_SRC)/*.c)
TEST_SRC := $(sort $(wildcard test/test_*.c))
FUZZ_SRC := $(sort $(wildcard test/fuzz/fuzz_*.c))
BENCH_SRC:= $(filter-out bench/loadgen_%.c,$(sort $(wildcard bench/*.c)))

LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ    := $(CLI_SRC:%.c=$(BUILD)/%.o)
ifeq ($(MODE),tsan)
CLI_OBJ    += $(BUILD)/test/tsan_shim.o # lets TSan see libuv's closes (test/tsan_shim.c)
endif
LLHTTP_OBJ := $(patsubst $(LLHTTP_SRC)/%.c,$(BUILD)/llhttp/%.o,$(LLHTTP_C))
LIB        := $(BUILD)/libcllama.a
BIN        := $(BUILD)/cllama
TEST_BIN   := $(TEST_SRC:test/%.c=$(BUILD)/test/%)
REPLAY_BIN := $(FUZZ_SRC:test/fuzz/%.c=$(BUILD)/replay/%)
BENCH_BIN  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.DELETE_ON_ERROR:
.PHONY: all build-all deps deps-optional print-pkgs js-deps bench-deps serve serve-run test test-run \
        test-neon check tsan fuzz bench bench-run bench-static clean format format-check
.DEFAULT_GOAL := all

all: $(BIN)

# ---------------------------------------------------------------- deps
# A package counts when dpkg says "install ok installed": one a killed
# apt-get left half unpacked is installed again (after `dpkg --configure -a`).
define apt_install
missing=""; for p in $(1); do \
  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
done; \
if [ -n "$$missing" ]; then \
  echo "make deps: installing$$missing"; \
  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
  export DEBIAN_FRONTEND=noninteractive; \
  $$SUDO dpkg --configure -a && $$SUDO apt-get update -qq && \
  $$SUDO apt-get install -y -qq $$missing >/dev/null; \
fi
endef
deps:
	@$(call apt_install,$(APT_PKGS)) || { echo "make deps: apt-get failed"; exit 1; }

deps-optional:
	@$(call apt_install,$(OPT_PKGS)) || echo "SKIP: make deps-optional: could not install $(OPT_PKGS); their checks will skip"

# The official JavaScript clients the API tests drive (npm registry).
# Best effort: without npm the tests that need them say SKIP.
JS_DIRS := test/js test/js-openai test/js-agents
js-deps:
	@command -v npm >/dev/null 2>&1 || { echo "SKIP: npm not found, JS client tests will skip"; exit 0; }; \
	for d in $(JS_DIRS); do \
	  [ -d $$d/node_modules ] || npm install --prefix $$d --no-audit --no-fund --loglevel=error >/dev/null 2>&1 \
	    || echo "SKIP: npm install in $$d failed, its tests will skip"; \
	done

# What test/fresh-machine.sh purges.
print-pkgs:
	@echo $(APT_PKGS) $(OPT_PKGS)

bench-deps:
	@$(MAKE) --no-print-directory deps APT_PKGS="$(BENCH_PKGS)"


# ---------------------------------------------------------------- build
# llhttp's flags live only here: its three objects follow this file.
$(BUILD)/llhttp/%.o: $(LLHTTP_SRC)/%.c Makefile
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -g $(SAN) -I$(LLHTTP_INC) -DLLHTTP_STRICT_MODE=1 -w -c $< -o $@

$(BUILD)/src/kernels/avx2.o: CFLAGS_ISA = $(if $(filter x86_64,$(ARCH)),$(ISA_avx2))
$(BUILD)/src/kernels/avx2_vnni.o: CFLAGS_ISA = $(if $(filter x86_64,$(ARCH)),$(ISA_avx2) -mavxvnni)
$(BUILD)/src/kernels/avx512.o: CFLAGS_ISA = $(if $(filter x86_64,$(ARCH)),$(ISA_avx512))
$(BUILD)/src/kernels/avx512_%.o: CFLAGS_ISA = $(if $(filter x86_64,$(ARCH)),$(ISA_avx512))
# AMX tiles (amx.c): dispatch.c installs its slots only where the CPU has
# AMX-INT8 (AMX-BF16 for BF16) and the kernel grants the tile state. The
# tests link a second build of it, with the tile instructions replaced by a
# C model (-DCLL_AMX_EMULATE), so it is tested on CPUs without AMX too.
ISA_amx    := $(ISA_avx512) -mamx-tile -mamx-int8 -mamx-bf16
$(BUILD)/src/kernels/amx.o: CFLAGS_ISA = $(if $(filter x86_64,$(ARCH)),$(ISA_amx))
AMX_EMU_OBJ := $(BUILD)/test/amx_emu.o
$(AMX_EMU_OBJ): src/kernels/amx.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(if $(filter x86_64,$(ARCH)),$(ISA_avx512)) -DCLL_AMX_EMULATE -c $< -o $@
$(BUILD)/test/test_kernels $(BUILD)/test/test_matmul: TEST_OBJ_EXTRA = $(AMX_EMU_OBJ)
$(BUILD)/test/test_kernels $(BUILD)/test/test_matmul: $(AMX_EMU_OBJ)
$(BUILD)/src/kernels/neon_dotprod.o: CFLAGS_ISA = $(if $(filter aarch64,$(ARCH)),$(ISA_neon_dotprod))

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(CFLAGS_ISA) -c $< -o $@

$(LIB): $(LIB_OBJ) $(LLHTTP_OBJ)
	@[ -n "$(LLHTTP_OBJ)" ] || { echo "no llhttp sources in $(LLHTTP_SRC) (make deps installs node-llhttp)"; exit 1; }
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $(CLI_OBJ) $(LIB) $(DEPS_LIBS)

# Static pattern rules: the objects are named targets, not intermediate
# files make may skip or delete.
$(TEST_BIN): $(BUILD)/test/%: $(BUILD)/test/%.o $(LIB)
	$(CC) $(LDFLAGS_ALL) $(TEST_LDFLAGS) -o $@ $< $(TEST_OBJ_EXTRA) $(LIB) $(DEPS_LIBS) -lcriterion

# test_chaos fails the n-th allocation (test/test_chaos.c): every allocation
# call from our objects goes through its hooks, and it runs `cllama serve`
# (src/cli/serve.c) on a thread of its own process.
CHAOS_WRAP := malloc calloc realloc strdup strndup posix_memalign aligned_alloc
$(BUILD)/test/test_chaos: TEST_LDFLAGS = $(foreach f,$(CHAOS_WRAP),-Wl,--wrap=$(f))
$(BUILD)/test/test_chaos: TEST_OBJ_EXTRA = $(BUILD)/src/cli/serve.o
$(BUILD)/test/test_chaos: $(BUILD)/src/cli/serve.o

$(REPLAY_BIN): $(BUILD)/replay/%: $(BUILD)/test/fuzz/%.o $(BUILD)/test/fuzz/replay.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/test/fuzz/replay.o $(LIB) $(DEPS_LIBS)

$(BENCH_BIN): $(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(BENCH_OBJ_EXTRA) $(LIB) $(DEPS_LIBS)

# bench/loadgen is one program in several files: bench/loadgen.c (command
# line, the sweep) and bench/loadgen_*.c (connections, report).
LOADGEN_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard bench/loadgen_*.c)))
$(BUILD)/bench/loadgen: BENCH_OBJ_EXTRA = $(LOADGEN_OBJ)
$(BUILD)/bench/loadgen: $(LOADGEN_OBJ)

# The tiny architecture models' generator (test/models/make-refs.sh uses it).
MKARCH := $(BUILD)/test/models/mkarch
$(MKARCH): $(BUILD)/test/models/mkarch.o $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(DEPS_LIBS)

# Generator of the encoder test models (test/models/mkenc.c; the tests run it).
MKENC := $(BUILD)/test/models/mkenc
$(MKENC): $(BUILD)/test/models/mkenc.o $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(DEPS_LIBS)

# ---------------------------------------------------------------- run
serve: deps
	@$(MAKE) --no-print-directory serve-run
serve-run: $(BIN)
	./$(BIN) serve

# Every test binary runs; test/run.sh prints one summary line at the end.
test: deps
	@$(MAKE) --no-print-directory deps-optional
	@$(MAKE) --no-print-directory test-run
test-run: js-deps $(BIN) $(TEST_BIN) $(REPLAY_BIN) $(BENCH_BIN) $(MKARCH) $(MKENC) test-neon
	@CLLAMA_BIN=$(abspath $(BIN)) CLLAMA_BUILD=$(abspath $(BUILD)) \
	  sh test/run.sh $(TEST_BIN) -- $(REPLAY_BIN)

# The kernel checks (test/kernels_checks.h) built standalone for aarch64 and
# run under qemu-user, once without and once with the dotprod extension, so
# neon.c is tested on this x86 machine. Optional packages:
# gcc-aarch64-linux-gnu qemu-user; without them this says SKIP.
NEON_CC  ?= aarch64-linux-gnu-gcc
QEMU_A64 ?= qemu-aarch64
NEON_SRC := src/kernels/types.c src/kernels/ref.c src/kernels/ref_matmul.c src/kernels/dispatch.c \
            src/kernels/neon.c src/util/error.c test/kernels_standalone.c
test-neon:
	@if command -v $(NEON_CC) >/dev/null 2>&1 && command -v $(QEMU_A64) >/dev/null 2>&1; then \
	  mkdir -p $(BUILD)/neon || exit 1; \
	  $(NEON_CC) $(STD) $(WARN) $(WERROR) -O2 $(ISA_neon_dotprod) $(INC) \
	    -c -o $(BUILD)/neon/neon_dotprod.o src/kernels/neon_dotprod.c || exit 1; \
	  for march in armv8-a armv8.2-a+dotprod+fp16; do \
	    out=$(BUILD)/neon/test_kernels-$$march; \
	    $(NEON_CC) $(STD) $(WARN) $(WERROR) -O2 -march=$$march -static $(INC) \
	      -o $$out $(NEON_SRC) $(BUILD)/neon/neon_dotprod.o -lm -lpthread || exit 1; \
	    echo "test-neon: -march=$$march under $(QEMU_A64)"; \
	    $(QEMU_A64) $$out || exit 1; \
	  done; \
	  echo "test-neon: -march=armv8-a on a CPU without dotprod (qemu -cpu cortex-a53)"; \
	  $(QEMU_A64) -cpu cortex-a53 $(BUILD)/neon/test_kernels-armv8-a || exit 1; \
	else \
	  echo "SKIP: test-neon: $(NEON_CC) or $(QEMU_A64) not found (apt-get install gcc-aarch64-linux-gnu qemu-user)"; \
	fi

check:
	@$(MAKE) --no-print-directory MODE=check test

# ThreadSanitizer. Criterion's runner cannot start in a TSan process (its
# boxfort arena wants a fixed mapping that TSan's shadow memory holds:
# "Could not initialize inheritable arena"), so the test binaries stay
# uninstrumented (build/release) and drive a TSan-built server instead:
# every test that starts `cllama` (the API, CLI, pull/push, create,
# integration and hostile tests: TSAN_TESTS) runs it from build/tsan. A
# ThreadSanitizer report in the server's log, or the non-zero exit status
# TSan gives a process that had one, fails that test (test/server_log.h).
TSAN_TESTS := $(patsubst test/%.c,build/release/test/%,$(filter-out test/test_chaos.c,\
                $(shell grep -l 'CLLAMA_BIN\|api_harness.h' $(TEST_SRC) 2>/dev/null)))
TSAN_OPTIONS_ALL := halt_on_error=0 exitcode=66 second_deadlock_stack=1 \
                    suppressions=$(abspath test/tsan.supp)
tsan: deps
	@$(MAKE) --no-print-directory MODE=tsan build/tsan/cllama
	@$(MAKE) --no-print-directory MODE=release js-deps $(TSAN_TESTS) build/release/test/models/mkarch \
	  build/release/test/models/mkenc
	@CLLAMA_BIN=$(abspath build/tsan/cllama) CLLAMA_BUILD=$(abspath build/release) \
	  CLLAMA_TEST_SANITIZED_SERVER=tsan TSAN_OPTIONS="$(TSAN_OPTIONS_ALL)" sh test/run.sh $(TSAN_TESTS)

# bench/model, bench/kernels, bench/mkmodel and the kernel checks
# (test/kernels_standalone.c) linked statically (Debian ships libblis.a and
# libgomp.a) and stripped, for a machine without the packages:
# build/$(MODE)/static/{model,kernels,mkmodel,kernels_check}.
# bench/model links the engine's scheduler (libuv: Debian's static one is
# libuv_a.a), the tokenizer (ICU, C++ runtime, PCRE2) and GGUF's JSON.
STATIC_LIBS := -l:libuv_a.a -ljansson -lpcre2-8 -licuuc -licudata -lstdc++ -lblis -lgomp -lm \
               -lpthread -ldl
bench-static: $(BUILD)/bench/model.o $(BUILD)/bench/kernels.o $(BUILD)/bench/mkmodel.o $(LIB)
	@mkdir -p $(BUILD)/static
	$(CC) -static -s -o $(BUILD)/static/model $(BUILD)/bench/model.o $(LIB) $(STATIC_LIBS)
	$(CC) -static -s -o $(BUILD)/static/kernels $(BUILD)/bench/kernels.o $(LIB) $(STATIC_LIBS)
	$(CC) -static -s -o $(BUILD)/static/mkmodel $(BUILD)/bench/mkmodel.o $(LIB) $(STATIC_LIBS)
	$(CC) -static -s $(STD) $(OPT) $(INC) -o $(BUILD)/static/kernels_check \
	  test/kernels_standalone.c $(LIB) $(STATIC_LIBS)

bench: deps
	@$(MAKE) --no-print-directory bench-run
bench-run: $(BIN) $(BENCH_BIN)

# Everything built, nothing run (CI builds the tree with clang this way).
build-all: $(BIN) $(TEST_BIN) $(REPLAY_BIN) $(BENCH_BIN) $(MKARCH) $(MKENC)

FUZZ_SECONDS ?= 60
FUZZ_BIN := $(FUZZ_SRC:test/fuzz/%.c=$(BUILD)/fuzz/%)
$(FUZZ_BIN): $(BUILD)/fuzz/%: $(BUILD)/test/fuzz/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -fsanitize=fuzzer -o $@ $< $(LIB) $(DEPS_LIBS)

ifeq ($(MODE),fuzz)
fuzz: $(FUZZ_BIN)
	@for b in $(FUZZ_BIN); do n=$$(basename $$b); \
	  mkdir -p $(BUILD)/corpus-$$n test/fuzz/corpus/$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	  $$b -max_total_time=$(FUZZ_SECONDS) $(BUILD)/corpus-$$n test/fuzz/corpus/$$n || exit 1; \
	done
else
fuzz: deps
	@$(MAKE) --no-print-directory deps-optional
	@$(MAKE) --no-print-directory MODE=fuzz fuzz
endif

FORMAT_SRC = $$(find src include test bench -name '*.[ch]' ! -path '*/node_modules/*' | sort)
format:
	clang-format -i $(FORMAT_SRC)

# The formatter config checked over the tree (.ci/run format).
format-check:
	@command -v clang-format >/dev/null 2>&1 || { echo "format-check: clang-format missing (make deps-optional)" >&2; exit 1; }
	clang-format --dry-run --Werror $(FORMAT_SRC)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
