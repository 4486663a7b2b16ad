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

-include edge-agent/agent.mk

# The reconciler (edge-agent/reconcile.c): intent -> overlay.h calls.
# Links proto/msg (PBCONV_OBJS) and the overlay registry (OVERLAY_OBJS).
RECONCILE_SRCS := edge-agent/reconcile.c
RECONCILE_OBJS := $(RECONCILE_SRCS:%.c=$(BUILD)/%.o)
ANALYZE_SRCS += $(RECONCILE_SRCS)
TEST_BINS += $(BUILD)/tests/unit/test_reconcile
TESTS     += $(BUILD)/tests/unit/test_reconcile
$(BUILD)/tests/unit/test_reconcile.o: | $(PROTO_GEN_H)
$(BUILD)/tests/unit/test_reconcile: $(BUILD)/tests/unit/test_reconcile.o \
    $(RECONCILE_OBJS) $(OVERLAY_OBJS) $(PBCONV_OBJS) $(PROTO_GEN_OBJS) \
    $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_OVERLAY) $(LIBS_PBCONV) $(LIBS_CMOCKA))
