# overlay/xfrm/xfrm.mk — the kernel backend (XFRM through libnl).  The only
# libnl user in the tree: its objects get CFLAGS_NL, and everything that
# links the registry (OVERLAY_OBJS) links LIBS_NL through LIBS_OVERLAY.
# Included before uesp.mk, whose link rules expand OVERLAY_OBJS when read;
# the rules that need every backend are in xfrm_tests.mk, included after.
XFRM_SRCS := overlay/xfrm/xfrm.c overlay/xfrm/xfrm_ev.c overlay/xfrm/xfrm_nl.c
XFRM_OBJS := $(XFRM_SRCS:%.c=$(BUILD)/%.o)
ANALYZE_SRCS += $(XFRM_SRCS)
OVERLAY_OBJS += $(XFRM_OBJS)
LIBS_OVERLAY += $(LIBS_NL)
$(XFRM_OBJS): EXTRA_CFLAGS += $(CFLAGS_NL)
