# controller/store.mk — the model (pure validation) and its unit tests.
MODEL_SRCS := controller/model.c
MODEL_OBJS := $(MODEL_SRCS:%.c=$(BUILD)/%.o)
ANALYZE_SRCS += $(MODEL_SRCS)

TEST_BINS += $(BUILD)/tests/unit/test_model
TESTS     += $(BUILD)/tests/unit/test_model
$(BUILD)/tests/unit/test_model: $(BUILD)/tests/unit/test_model.o \
		$(MODEL_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_CMOCKA))
