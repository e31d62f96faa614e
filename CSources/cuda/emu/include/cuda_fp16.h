/* stand-in for the CUDA emulation build (cuda_emu.h) */
#include "cuda_emu.h"
