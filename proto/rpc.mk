# proto/rpc — the gRPC layer (the only user of grpc_*) and its tests.
RPC_SRCS := proto/rpc.c
RPC_OBJS := $(RPC_SRCS:%.c=$(BUILD)/%.o)
ANALYZE_SRCS += $(RPC_SRCS)

# The rpc test programs use the generated types of the contract directly:
# they test the wire layer itself (daemons go through proto/pbconv).
RPC_TEST := $(BUILD)/tests/rpc/rpc_test
$(BUILD)/tests/rpc/%.o: EXTRA_CFLAGS += -Wno-missing-prototypes
$(BUILD)/tests/rpc/rpc_test.o: | $(PROTO_GEN_H)
$(RPC_TEST): $(BUILD)/tests/rpc/rpc_test.o $(RPC_OBJS) $(LIB_OBJS) \
		$(PROTO_GEN_OBJS)
	$(call link,$@,$^,$(LIBS_GRPC) $(LIBS_PROTOBUF))

$(BUILD)/tests/unit/test_rpc: $(BUILD)/tests/unit/test_rpc.o $(RPC_OBJS) \
		$(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_GRPC) $(LIBS_CMOCKA))

RPC_BENCH := $(BUILD)/tests/bench/rpc_bench
$(BUILD)/tests/bench/%.o: EXTRA_CFLAGS += -Wno-missing-prototypes
$(BUILD)/tests/bench/rpc_bench.o: | $(PROTO_GEN_H)
$(RPC_BENCH): $(BUILD)/tests/bench/rpc_bench.o $(RPC_OBJS) $(LIB_OBJS) \
		$(PROTO_GEN_OBJS)
	$(call link,$@,$^,$(LIBS_GRPC) $(LIBS_PROTOBUF))

TEST_BINS += $(BUILD)/tests/unit/test_rpc $(RPC_TEST)
TESTS += $(BUILD)/tests/unit/test_rpc \
	tests/rpc/rpc_roundtrip.sh \
	tests/rpc/rpc_mtls.sh \
	tests/rpc/rpc_disconnect.sh \
	tests/rpc/rpc_streams.sh \
	tests/rpc/rpc_teardown.sh \
	tests/rpc/rpc_comeback.sh \
	tests/rpc/rpc_interop.sh \
	tests/rpc/rpc_asan.sh
BENCHES += $(RPC_BENCH)
