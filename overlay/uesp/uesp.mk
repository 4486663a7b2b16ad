# overlay/uesp/uesp.mk — the userspace ESP backend (runtime, devices,
# workers) and the meshwan-uesp static tool.  The ESP crypto core
# (esp.c, replay.c) comes from esp.mk as $(ESP_OBJS).
UESP_SRCS := overlay/uesp/uesp.c overlay/uesp/uesp_encap.c \
    overlay/uesp/uesp_tunnel.c overlay/uesp/uesp_dev.c \
    overlay/uesp/uesp_worker.c overlay/uesp/uesp_gso.c \
    overlay/uesp/uesp_seq.c
UESP_OBJS := $(UESP_SRCS:%.c=$(BUILD)/%.o)
# Device addresses go through libnl-route (one RTM_NEWADDR, uesp_dev.c).
$(BUILD)/overlay/uesp/uesp_dev.o: EXTRA_CFLAGS += $(CFLAGS_NL)
UESP_TOOL_SRCS := overlay/uesp/uesp_cfg.c overlay/uesp/uesp_main.c
ANALYZE_SRCS += $(UESP_SRCS) $(UESP_TOOL_SRCS)

BINS += $(BUILD)/overlay/uesp/meshwan-uesp
$(BUILD)/overlay/uesp/meshwan-uesp: $(UESP_TOOL_SRCS:%.c=$(BUILD)/%.o) \
    $(OVERLAY_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_OVERLAY) $(LIBS_JANSSON))

# The registry's test (tests/unit/test_overlay.c) links here: overlay.o
# names every backend, so it needs all their objects.
TEST_BINS += $(BUILD)/tests/unit/test_overlay
TESTS     += $(BUILD)/tests/unit/test_overlay
$(BUILD)/tests/unit/test_overlay: $(BUILD)/tests/unit/test_overlay.o \
    $(BUILD)/overlay/uesp/uesp_cfg.o $(OVERLAY_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_OVERLAY) $(LIBS_JANSSON) $(LIBS_CMOCKA))

TEST_BINS += $(BUILD)/tests/unit/test_overlay_uesp
TESTS     += $(BUILD)/tests/unit/test_overlay_uesp
$(BUILD)/tests/unit/test_overlay_uesp: $(BUILD)/tests/unit/test_overlay_uesp.o \
    $(OVERLAY_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_OVERLAY) $(LIBS_CMOCKA))

# The backend end to end on loopback in a namespace of its own (root):
# nonces on the wire, the reservation file, forged inner sources.
TEST_BINS += $(BUILD)/tests/unit/test_overlay_nonce
TESTS     += $(BUILD)/tests/unit/test_overlay_nonce
$(BUILD)/tests/unit/test_overlay_nonce: $(BUILD)/tests/unit/test_overlay_nonce.o \
    $(BUILD)/overlay/uesp/uesp_cfg.o $(OVERLAY_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_OVERLAY) $(LIBS_JANSSON) $(LIBS_CMOCKA))

# Namespace tests (root): need the tool built first.
TEST_BINS += $(BUILD)/overlay/uesp/meshwan-uesp
TESTS     += tests/netns/uesp_gre.sh tests/netns/uesp_gre_asan.sh \
    tests/netns/uesp_vxlan.sh \
    tests/netns/uesp_tshark.sh tests/netns/uesp_restart.sh

# The inbound path past ESP (decapsulation, coalescing) and TUN
# segmentation under libFuzzer (make fuzz; run briefly by make test).
FUZZ_TARGETS += uesp_rx
FUZZ_uesp_rx_SRCS := tests/fuzz/fuzz_uesp_rx.c overlay/overlay.c \
    overlay/null.c $(UESP_SRCS) $(ESP_SRCS) $(LIB_SRCS)
FUZZ_uesp_rx_LIBS := $(LIBS_CRYPTO) -lpthread
