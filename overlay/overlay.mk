# overlay/overlay.mk — the backend interface: registry (overlay.c) and the
# null backend.  OVERLAY_OBJS is everything a user of overlay_find() links
# (the registry names every backend); recursive so later fragments
# (uesp.mk, esp.mk) can fill in their objects.
OVERLAY_SRCS := overlay/overlay.c overlay/null.c
ANALYZE_SRCS += $(OVERLAY_SRCS)
OVERLAY_OBJS = $(OVERLAY_SRCS:%.c=$(BUILD)/%.o) $(UESP_OBJS) $(ESP_OBJS)
LIBS_OVERLAY := $(LIBS_CRYPTO) -lpthread

# Its unit test (registry, null backend, reconcile order) is linked in
# uesp/uesp.mk, where every backend's objects are known.
