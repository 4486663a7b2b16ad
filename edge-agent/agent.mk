# edge-agent/agent.mk — the meshwan-edge daemon (main.c, agent.c, keys.c,
# cache.c) and its namespace tests.  Read from module.mk before the FRR and
# reconciler blocks, so their objects are named here directly.
AGENT_SRCS := edge-agent/main.c edge-agent/agent.c edge-agent/keys.c \
	edge-agent/cache.c
AGENT_OBJS := $(AGENT_SRCS:%.c=$(BUILD)/%.o)
ANALYZE_SRCS += $(AGENT_SRCS)
$(AGENT_OBJS): | $(PROTO_GEN_H)

EDGE_AGENT := $(BUILD)/edge-agent/meshwan-edge
BINS += $(EDGE_AGENT)
$(EDGE_AGENT): $(AGENT_OBJS) $(EDGE_LIB_OBJS) $(BUILD)/edge-agent/config.o \
		$(BUILD)/edge-agent/frr.o $(BUILD)/edge-agent/reconcile.o \
		$(OVERLAY_OBJS) $(RPC_OBJS) $(PBCONV_OBJS) $(PROTO_GEN_OBJS) \
		$(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_OVERLAY) $(LIBS_GRPC) $(LIBS_PBCONV) \
		$(LIBS_JANSSON) $(LIBS_CRYPTO) $(STATUS_LIBS))
TEST_BINS += $(EDGE_AGENT)

# Test tool: the secrets of a state folder, for the key-bytes search.
AGENT_KEYS_TOOL := $(BUILD)/tests/edge/agent_keys
$(BUILD)/tests/edge/agent_keys.o: | $(PROTO_GEN_H)
$(AGENT_KEYS_TOOL): $(BUILD)/tests/edge/agent_keys.o \
		$(BUILD)/edge-agent/keys.o $(BUILD)/edge-agent/cache.o \
		$(PBCONV_OBJS) $(PROTO_GEN_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_PBCONV))
TEST_BINS += $(AGENT_KEYS_TOOL)

# Namespace tests of the daemon (root, real FRR, the ASan build).
TESTS += tests/edge/agent_two_sites.sh tests/edge/agent_rekey.sh \
	tests/edge/agent_restart.sh tests/edge/agent_enroll_retry.sh
