#ifndef DROVER_CMOSQUITTO_SHIM_H
#define DROVER_CMOSQUITTO_SHIM_H
#include <mosquitto.h>
#include <mqtt_protocol.h>
#endif
