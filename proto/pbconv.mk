# proto/pbconv.mk — the conversion layer between the wire contract and the
# daemons' C structs (msg.c, pbconv.c), its unit tests and its fuzzer.
# Daemons link $(PBCONV_OBJS) $(PROTO_GEN_OBJS) with $(LIBS_PBCONV).

PBCONV_SRCS := proto/fieldpath.c proto/msg.c proto/pbconv.c \
	proto/sakey.c proto/epochsig.c
PBCONV_OBJS := $(PBCONV_SRCS:%.c=$(BUILD)/%.o)
LIBS_PBCONV := $(LIBS_PROTOBUF) $(LIBS_CRYPTO)
ANALYZE_SRCS += $(PBCONV_SRCS)

$(PBCONV_OBJS): | $(PROTO_GEN_H)

TEST_BINS += $(BUILD)/tests/unit/test_pbconv
TESTS     += $(BUILD)/tests/unit/test_pbconv
$(BUILD)/tests/unit/test_pbconv.o: | $(PROTO_GEN_H)
$(BUILD)/tests/unit/test_pbconv: $(BUILD)/tests/unit/test_pbconv.o \
		$(PBCONV_OBJS) $(PROTO_GEN_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_PBCONV) $(LIBS_CMOCKA))

# SA key derivation and epoch-key signatures (RFC vectors, our own
# vectors from proto/README.md, both-ends property).
TEST_BINS += $(BUILD)/tests/unit/test_sakey
TESTS     += $(BUILD)/tests/unit/test_sakey
$(BUILD)/tests/unit/test_sakey: $(BUILD)/tests/unit/test_sakey.o \
		$(PBCONV_OBJS) $(PROTO_GEN_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_PBCONV) $(LIBS_CMOCKA))

# libFuzzer target; the top Makefile's fuzz rule builds every FUZZ_TARGETS
# entry from FUZZ_<name>_SRCS / FUZZ_<name>_LIBS into build-fuzz/.
FUZZ_TARGETS += pbconv
FUZZ_pbconv_SRCS := tests/fuzz/fuzz_pbconv.c proto/pbconv.c proto/msg.c \
	proto/fieldpath.c \
	lib/log.c lib/util.c $(PROTO_GEN_C)
FUZZ_pbconv_LIBS := -lprotobuf-c -lcrypto
FUZZ_pbconv_DEPS := $(PROTO_GEN_H)

# Benchmark (make bench runs tests/bench/pbconv_bench.sh).
PBCONV_BENCH := $(BUILD)/tests/bench/pbconv_bench
$(BUILD)/tests/bench/pbconv_bench.o: | $(PROTO_GEN_H)
$(PBCONV_BENCH): $(BUILD)/tests/bench/pbconv_bench.o $(PBCONV_OBJS) \
		$(PROTO_GEN_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_PBCONV))
BENCHES += $(PBCONV_BENCH)
