# controller/daemon.mk — meshwan-controller itself: config, CA,
# enrollment, edge sessions, the event loop; and their tests.

CTLD_CORE_SRCS := controller/config.c controller/ca.c
CTLD_CORE_OBJS := $(CTLD_CORE_SRCS:%.c=$(BUILD)/%.o)
ANALYZE_SRCS += $(CTLD_CORE_SRCS)

TEST_BINS += $(BUILD)/tests/unit/test_ctld_config
TESTS     += $(BUILD)/tests/unit/test_ctld_config
$(BUILD)/tests/unit/test_ctld_config: $(BUILD)/tests/unit/test_ctld_config.o \
    $(BUILD)/controller/config.o $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_CMOCKA))
