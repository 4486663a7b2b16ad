# overlay/xfrm/xfrm_tests.mk — what links every backend's objects, so it is
# read after uesp.mk (see xfrm.mk).

# The uesp fuzz target compiles overlay.c, whose registry names xfrm_ops;
# -I placed among its libraries still applies to the one clang call.
FUZZ_uesp_rx_SRCS += $(XFRM_SRCS)
FUZZ_uesp_rx_LIBS += $(CFLAGS_NL) $(LIBS_NL)

# Unit test on the host kernel: policies, VXLAN devices, adoption,
# ownership, and the SA message mapping (the host has no ESP).
TEST_BINS += $(BUILD)/tests/unit/test_overlay_xfrm
TESTS     += $(BUILD)/tests/unit/test_overlay_xfrm
$(BUILD)/tests/unit/test_overlay_xfrm.o: EXTRA_CFLAGS += $(CFLAGS_NL)
$(BUILD)/tests/unit/test_overlay_xfrm: $(BUILD)/tests/unit/test_overlay_xfrm.o \
    $(OVERLAY_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_OVERLAY) $(LIBS_CMOCKA))

# SA installs per second; the lab scenario xfrm_backend.sh runs it, so
# make test builds it too.
BENCHES += $(BUILD)/tests/bench/xfrm_bench
TEST_BINS += $(BUILD)/tests/bench/xfrm_bench
$(BUILD)/tests/bench/xfrm_bench.o: EXTRA_CFLAGS += $(CFLAGS_NL)
$(BUILD)/tests/bench/xfrm_bench: $(BUILD)/tests/bench/xfrm_bench.o \
    $(OVERLAY_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_OVERLAY))

# The lab scenarios' driver: one backend instance per namespace, fed
# commands on stdin (tests/lab/scenarios/xfrm_*.sh).
TEST_BINS += $(BUILD)/tests/lab/xfrm_drive
$(BUILD)/tests/lab/xfrm_drive.o: EXTRA_CFLAGS += $(CFLAGS_NL)
$(BUILD)/tests/lab/xfrm_drive: $(BUILD)/tests/lab/xfrm_drive.o \
    $(OVERLAY_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_OVERLAY))
