// C wrapper of double-conversion's shortest mode (see dtoa.h).
#include "util/dtoa.h"

#include <cmath>

#include <double-conversion/double-to-string.h>

extern "C" size_t lmr_dtoa_shortest(double v, char *digits, int *point)
{
    if (v == 0 || !std::isfinite(v))
        return 0;
    bool sign = false;
    int length = 0;
    double_conversion::DoubleToStringConverter::DoubleToAscii(v, double_conversion::DoubleToStringConverter::SHORTEST,
                                                              0, digits, 18, &sign, &length, point);
    return length > 0 ? (size_t)length : 0;
}
