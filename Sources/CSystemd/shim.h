#ifndef DROVER_CSYSTEMD_SHIM_H
#define DROVER_CSYSTEMD_SHIM_H
#include <systemd/sd-daemon.h>
#endif
