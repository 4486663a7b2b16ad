# edge-agent/agent.mk — the meshwan-edge daemon (main.c, agent.c, keys.c,
# cache.c) and its namespace tests.  Read from module.mk before the FRR and
# reconciler blocks, so their objects are named here directly.
AGENT_SRCS := edge-agent/main.c edge-agent/agent.c edge-agent/keys.c \
	edge-agent/pin.c edge-agent/cache.c edge-agent/health.c
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
		$(LIBS_JANSSON) $(LIBS_SSL) $(STATUS_LIBS))
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
	tests/edge/agent_restart.sh tests/edge/bad_input.sh \
	tests/edge/agent_enroll_retry.sh tests/edge/agent_enroll_lost.sh

# Tunnel health (health.c, part of AGENT_SRCS): the probes and the
# RTT/loss/jitter arithmetic; the unit test needs root (loopback prober).
TEST_BINS += $(BUILD)/tests/unit/test_edge_health
TESTS     += $(BUILD)/tests/unit/test_edge_health
$(BUILD)/tests/unit/test_edge_health: $(BUILD)/tests/unit/test_edge_health.o \
		$(BUILD)/edge-agent/health.o $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_CMOCKA))

# libFuzzer target for what health.c reads from its raw ICMP socket.
FUZZ_TARGETS += health
FUZZ_health_SRCS := tests/edge/fuzz_health.c edge-agent/health.c \
	lib/log.c lib/util.c

# Test controller of bad_input.sh: relays a real controller and sends
# the edge malformed and overlapping intents on command.
AGENT_BADCTL := $(BUILD)/tests/edge/badctl
$(BUILD)/tests/edge/badctl.o: | $(PROTO_GEN_H)
$(AGENT_BADCTL): $(BUILD)/tests/edge/badctl.o $(RPC_OBJS) $(PBCONV_OBJS) \
		$(PROTO_GEN_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_GRPC) $(LIBS_PBCONV))
TEST_BINS += $(AGENT_BADCTL)
