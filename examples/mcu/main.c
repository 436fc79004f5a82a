/* The smallest host program around digitkit's C export.
 *
 *   digitkit export --int8 --c --out runs/export
 *   cc -std=c99 -O2 -I runs/export examples/mcu/main.c runs/export/digit_mlp_int8.c -o digit
 *   ./digit image.raw      (784 bytes: 28x28 uint8 pixels, white digit on black, row-major)
 *
 * On a microcontroller the same two calls apply; see docs/microcontrollers.md. */
#include <stdio.h>

#include "digit_mlp_int8.h"

int main(int argc, char **argv)
{
    uint8_t pixels[DIGIT_MLP_INT8_PIXELS];
    int8_t probabilities[DIGIT_MLP_INT8_CLASSES];
    float p[DIGIT_MLP_INT8_CLASSES];
    FILE *f;
    int digit, c;
    if (argc != 2 || (f = fopen(argv[1], "rb")) == NULL) {
        fprintf(stderr, "usage: %s IMAGE.raw (784 bytes of 28x28 pixels)\n", argv[0]);
        return 2;
    }
    if (fread(pixels, 1, sizeof pixels, f) != sizeof pixels) {
        fprintf(stderr, "%s: not 784 bytes\n", argv[1]);
        fclose(f);
        return 2;
    }
    fclose(f);
    digit = digit_mlp_int8_predict(pixels, probabilities);
    digit_mlp_int8_dequantize(probabilities, p);
    printf("digit %d\n", digit);
    for (c = 0; c < DIGIT_MLP_INT8_CLASSES; c++) {
        printf("  %d: %.4f\n", c, (double)p[c]);
    }
    return 0;
}
