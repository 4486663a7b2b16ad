# edge-agent/ — meshwan-edge.  Each piece owns its own fragment.

# The controller-facing library: the Session stream and enrollment.  Only
# proto/ (rpc, pbconv, msg), lib/ and OpenSSL: link it with $(RPC_OBJS)
# $(PBCONV_OBJS) $(PROTO_GEN_OBJS) $(LIB_OBJS), $(LIBS_GRPC)
# $(LIBS_PBCONV) $(LIBS_CRYPTO).
EDGE_LIB_SRCS := edge-agent/session.c edge-agent/enroll.c
EDGE_LIB_OBJS := $(EDGE_LIB_SRCS:%.c=$(BUILD)/%.o)
ANALYZE_SRCS += $(EDGE_LIB_SRCS)
$(EDGE_LIB_OBJS): | $(PROTO_GEN_H)

# The test edges speak through it too.  Their rules are in
# controller/daemon.mk, which is read before this fragment: the objects
# join their prerequisites (and so $^) here.
$(CTL_EDGE) $(CTL_LOAD): $(EDGE_LIB_OBJS)

# Enrollment's key pair: reused across attempts, always 0600.
TEST_BINS += $(BUILD)/tests/unit/test_edge_enroll
TESTS     += $(BUILD)/tests/unit/test_edge_enroll
$(BUILD)/tests/unit/test_edge_enroll.o: | $(PROTO_GEN_H)
$(BUILD)/tests/unit/test_edge_enroll: $(BUILD)/tests/unit/test_edge_enroll.o \
		$(EDGE_LIB_OBJS) $(RPC_OBJS) $(PBCONV_OBJS) $(PROTO_GEN_OBJS) \
		$(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_GRPC) $(LIBS_PBCONV) $(LIBS_CRYPTO) \
		$(LIBS_CMOCKA))

-include edge-agent/agent.mk
-include edge-agent/status.mk

# --- FRR driver and agent configuration (frr.c, config.c) and their tests.
EDGE_FRR_SRCS := edge-agent/frr.c edge-agent/config.c
EDGE_MSG_OBJS := $(BUILD)/proto/msg.o $(BUILD)/proto/fieldpath.o
ANALYZE_SRCS += $(EDGE_FRR_SRCS)

TEST_BINS += $(BUILD)/tests/unit/test_edge_frr
TESTS     += $(BUILD)/tests/unit/test_edge_frr
$(BUILD)/tests/unit/test_edge_frr: $(BUILD)/tests/unit/test_edge_frr.o \
		$(BUILD)/edge-agent/frr.o $(EDGE_MSG_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_JANSSON) $(LIBS_CMOCKA))

TEST_BINS += $(BUILD)/tests/unit/test_edge_config
TESTS     += $(BUILD)/tests/unit/test_edge_config
$(BUILD)/tests/unit/test_edge_config: $(BUILD)/tests/unit/test_edge_config.o \
		$(BUILD)/edge-agent/config.o $(EDGE_MSG_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_CMOCKA))

# Namespace test: two FRR instances driven through frr.c by frr_drive.
EDGE_FRR_DRIVE := $(BUILD)/tests/edge/frr_drive
$(BUILD)/tests/edge/%.o: EXTRA_CFLAGS += -Wno-missing-prototypes
$(EDGE_FRR_DRIVE): $(BUILD)/tests/edge/frr_drive.o $(BUILD)/edge-agent/frr.o \
		$(EDGE_MSG_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_JANSSON))
TEST_BINS += $(EDGE_FRR_DRIVE)
TESTS     += tests/edge/frr_bgp.sh

# libFuzzer target for what frr.c reads from FRR (JSON, running-config).
FUZZ_TARGETS += frr
FUZZ_frr_SRCS := tests/edge/fuzz_frr.c edge-agent/frr.c proto/msg.c \
	proto/fieldpath.c lib/log.c lib/util.c
FUZZ_frr_LIBS := -ljansson
# --- end of FRR driver and configuration block.

# --- Reconciler (reconcile.c): intent -> overlay.h calls, and its test.
# Links proto/msg.c (+ fieldpath.c) and the overlay registry (OVERLAY_OBJS).
RECONCILE_SRCS := edge-agent/reconcile.c
RECONCILE_OBJS := $(RECONCILE_SRCS:%.c=$(BUILD)/%.o)
ANALYZE_SRCS += $(RECONCILE_SRCS)
TEST_BINS += $(BUILD)/tests/unit/test_reconcile
TESTS     += $(BUILD)/tests/unit/test_reconcile
$(BUILD)/tests/unit/test_reconcile: $(BUILD)/tests/unit/test_reconcile.o \
    $(RECONCILE_OBJS) $(OVERLAY_OBJS) $(BUILD)/proto/msg.o \
    $(BUILD)/proto/fieldpath.o $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_OVERLAY) $(LIBS_CMOCKA))
# --- end of reconciler block.
