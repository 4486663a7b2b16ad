# meshwan — one build for the whole tree.
#
# Each part of the tree adds itself through its own module.mk fragment:
# sources, binaries, and the tests it registers.  Objects go to $(BUILD),
# never next to the sources.  `make V=1` shows the commands,
# `make SANITIZE=address,undefined` builds everything with sanitizers into
# build-asan/ (so a sanitizer build never mixes with a normal one).
#
# Targets: all (default), deps, test, test-lab, demo, demo-down, bench, fuzz, analyze,
# clean.

SANITIZE ?=
ifeq ($(SANITIZE),)
BUILD ?= build
else
BUILD ?= build-san
endif

CC      ?= gcc
ifeq ($(origin CC),default)
CC := gcc
endif
PKG_CONFIG ?= pkg-config

WARN    := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wformat=2 \
           -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -fno-strict-aliasing \
           -I. -I$(BUILD)/proto -MMD -MP
LDFLAGS ?=
ALL_LDFLAGS := $(LDFLAGS)
ifneq ($(SANITIZE),)
ALL_CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
ALL_LDFLAGS += -fsanitize=$(SANITIZE)
endif

ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-7s %s\n'
endif

# Libraries by name; a module links only what it uses.  proto/rpc.c calls
# OpenSSL once itself (see rpc_openssl_no_atexit), hence -lcrypto in GRPC.
LIBS_GRPC     := -lgrpc -lgpr -lcrypto -lpthread
LIBS_PROTOBUF := -lprotobuf-c
LIBS_CRYPTO   := -lcrypto
LIBS_SSL      := -lssl -lcrypto
LIBS_SQLITE   := -lsqlite3
LIBS_PQ       := -lpq
LIBS_HTTPD    := -lmicrohttpd
LIBS_JANSSON  := -ljansson
LIBS_CMOCKA   := -lcmocka
LIBS_NL       := $(shell $(PKG_CONFIG) --libs libnl-3.0 libnl-route-3.0 libnl-xfrm-3.0 2>/dev/null)
CFLAGS_NL     := $(shell $(PKG_CONFIG) --cflags libnl-3.0 2>/dev/null)

# Filled in by the fragments.
BINS      :=
TESTS     :=   # programs and scripts run by `make test`, in order
TEST_BINS :=   # programs that must be built before the tests run
BENCHES   :=
FUZZERS   :=
FUZZ_TARGETS :=  # names; each gives FUZZ_<name>_SRCS, FUZZ_<name>_LIBS
ANALYZE_SRCS :=

.PHONY: all deps test test-lab demo demo-down bench fuzz analyze clean
all: deps-checked build-all

include lib/module.mk
include proto/module.mk
include overlay/module.mk
include controller/module.mk
include edge-agent/module.mk
include tests/module.mk

# Fuzzers (libFuzzer): every FUZZ_TARGETS entry NAME names its sources in
# FUZZ_NAME_SRCS, its libraries in FUZZ_NAME_LIBS and, optionally, order-only
# prerequisites such as generated headers in FUZZ_NAME_DEPS.  Each is built
# from source in one clang call into build-fuzz/fuzz_NAME; `make test` builds
# them and runs each for a bounded time through tests/fuzz/run.sh.
FUZZ_BUILD  := build-fuzz
FUZZ_CC     ?= clang
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 \
               -D_GNU_SOURCE -I. -I$(BUILD)/proto
define fuzz_rule
$(FUZZ_BUILD)/fuzz_$(1): $$(FUZZ_$(1)_SRCS) $$(wildcard $$(patsubst %.c,%.h,$$(FUZZ_$(1)_SRCS))) | deps-checked $$(FUZZ_$(1)_DEPS)
	$$(say) FUZZ $$@
	@mkdir -p $(FUZZ_BUILD)
	$$(Q)$$(FUZZ_CC) $$(FUZZ_CFLAGS) -o $$@ $$(FUZZ_$(1)_SRCS) $$(FUZZ_$(1)_LIBS)
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_rule,$(t))))
FUZZERS   += $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
ifneq ($(strip $(FUZZ_TARGETS)),)
TEST_BINS += $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
TESTS     += tests/fuzz/run.sh
endif

build-all: $(BINS)
.PHONY: build-all deps-checked

# `make deps` installs; every other entry point checks first (fast when
# everything is present) so a fresh clone needs only `make test`.
deps:
	@sh .ci/deps
deps-checked:
	@sh .ci/deps

# A fragment adds flags for its own objects with a target-specific
# variable, e.g.  $(BUILD)/overlay/xfrm/%.o: EXTRA_CFLAGS += $(CFLAGS_NL)
$(BUILD)/%.o: %.c | deps-checked
	$(say) CC $<
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) $(EXTRA_CFLAGS) -c -o $@ $<

# Link rule used by every fragment:  $(call link,OUTPUT,OBJS,LIBS)
define link
	$(say) LD $(1)
	@mkdir -p $(dir $(1))
	$(Q)$(CC) $(ALL_LDFLAGS) -o $(1) $(2) $(3)
endef

test: deps-checked build-all $(TEST_BINS)
	@BUILD=$(BUILD) sh tests/run $(TESTS)

# The kernel lab alone (tests/lab/README.md): each scenario boots Debian's
# kernel under QEMU; make test runs them too.
test-lab: deps-checked $(LAB_BINS)
	@BUILD=$(BUILD) sh tests/run $(LAB_TESTS)

bench: deps-checked build-all $(TEST_BINS) $(BENCHES)
	@BUILD=$(BUILD) sh tests/bench/run

# Three sites in network namespaces, left running; demo-down removes them.
demo: deps-checked build-all
	@BUILD=$(BUILD) sh tests/demo.sh up

demo-down:
	@BUILD=$(BUILD) sh tests/demo.sh down

fuzz: deps-checked $(FUZZERS)

analyze: deps-checked $(PROTO_GEN)
	@sh .ci/analyze $(BUILD) $(ANALYZE_SRCS)

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
