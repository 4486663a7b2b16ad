# controller/ — meshwan-controller and meshwanctl.  Each piece owns its
# own fragment.
-include controller/store.mk
-include controller/topo.mk
-include controller/api.mk
-include controller/daemon.mk
