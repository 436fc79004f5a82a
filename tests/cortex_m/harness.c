/* Runs the generated C on N images read by semihosting from pixels.bin (N x 784 bytes), writes the
 * int8 probabilities to out.bin (N x 10) and prints "images N ticks T" (SysTick counts spent inside
 * digit_mlp_int8_predict; with qemu -icount shift=0 one count is a fixed number of instructions). */
#include <stdint.h>
#include <stdio.h>

#include "digit_mlp_int8.h"

extern void initialise_monitor_handles(void);

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static uint8_t pixels[DIGIT_MLP_INT8_PIXELS];
static int8_t probabilities[DIGIT_MLP_INT8_CLASSES];

int main(void)
{
    FILE *in, *out;
    unsigned long images = 0, ticks = 0;
    initialise_monitor_handles();
    in = fopen("pixels.bin", "rb");
    out = fopen("out.bin", "wb");
    if (in == NULL || out == NULL) {
        printf("cannot open pixels.bin or out.bin\n");
        return 1;
    }
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 5u; /* enable, processor clock, no interrupt */
    while (fread(pixels, 1, sizeof pixels, in) == sizeof pixels) {
        uint32_t start = SYST_CVR, end;
        digit_mlp_int8_predict(pixels, probabilities);
        end = SYST_CVR;
        ticks += (start - end) & 0x00FFFFFFu; /* counts down */
        fwrite(probabilities, 1, sizeof probabilities, out);
        images++;
    }
    fclose(out);
    fclose(in);
    printf("images %lu ticks %lu\n", images, ticks);
    return 0;
}
