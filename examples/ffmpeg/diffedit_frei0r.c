/*
 * diffedit as a frei0r filter, so that stock FFmpeg runs it inside a filter graph:
 *
 *   FREI0R_PATH=build/frei0r-1 ffmpeg -i in.mp4 \
 *     -vf "frei0r=filter_name=diffedit:filter_params=a blue circle on a white background|a red circle on a white background|sdedit|0.6" \
 *     out.mp4
 *
 * Parameters, in the order filter_params lists them ('|'-separated; trailing ones may be left out):
 *   0 prompt          string  target description, or the instruction for instruct models (required)
 *   1 source_prompt   string  description of the input (ddim, p2p); "" = none
 *   2 method          string  auto|sdedit|ddim|p2p|instruct|inpaint ("" = auto; inpaint needs a mask, which this filter has no parameter for)
 *   3 strength        double  sdedit noise level in (0, 1]; 0 = default
 *   4 guidance        double  text guidance scale; 0 = default
 *   5 steps           double  denoising steps (integer); 0 = default
 *   6 seed            double  noise seed (integer), shared by every frame
 *   7 model           string  diffusers folder or .safetensors; "" = the embedded default model
 *   8 lookahead       double  frames of lookahead of the consistent method (integer 0..15, default 0)
 *   9 controlnet      string  a ControlNet made for the model (diffusers ControlNetModel folder or
 *                             control_*.safetensors); "" = none. Each frame gets its own control map
 *  10 control         string  its preprocessor: canny|tile ("" = canny)
 *  11 control_scale   double  its conditioning scale; 0 = default 1
 * Numbers are taken as given (not frei0r's usual [0, 1] normalisation).
 *
 * Latency: frei0r's f0r_update hands over one frame and wants one frame back at once, and has no
 * end-of-stream call. With lookahead 0 (default) every frame is edited when it arrives (each frame is a
 * keyframe of the consistent method: shared noise, cross-frame attention to the first frame, propagation
 * from it, source-static pixel fusion), so output frame t is edited frame t. With lookahead L > 0 the
 * consistent method works on windows of L + 1 frames: output frame t is edited frame t - L, the first L
 * output frames are the unedited input frames, and the last L edited frames are never shown.
 *
 * Errors (a bad method name, a model that does not load, an empty prompt...) cannot be returned through
 * frei0r: the plug-in prints "diffedit frei0r: error: ..." on stderr and ends the process with status 1
 * (FFmpeg itself rejects a numeric parameter that does not parse, before the plug-in sees it).
 */
#define _POSIX_C_SOURCE 200809L
#include <frei0r.h>
#include <diffedit.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_PROMPT, P_SOURCE, P_METHOD, P_STRENGTH, P_GUIDANCE, P_STEPS, P_SEED, P_MODEL, P_LOOKAHEAD,
       P_CONTROLNET, P_CONTROL, P_CONTROL_SCALE, P_COUNT };

static const char *param_names[P_COUNT] = {
    "prompt", "source_prompt", "method", "strength", "guidance", "steps", "seed", "model", "lookahead",
    "controlnet", "control", "control_scale"
};
static const int param_types[P_COUNT] = {
    F0R_PARAM_STRING, F0R_PARAM_STRING, F0R_PARAM_STRING, F0R_PARAM_DOUBLE, F0R_PARAM_DOUBLE,
    F0R_PARAM_DOUBLE, F0R_PARAM_DOUBLE, F0R_PARAM_STRING, F0R_PARAM_DOUBLE, F0R_PARAM_STRING,
    F0R_PARAM_STRING, F0R_PARAM_DOUBLE
};
static const char *param_help[P_COUNT] = {
    "target description or instruction",
    "description of the input (ddim, p2p)",
    "auto, sdedit, ddim, p2p or instruct",
    "sdedit strength in (0, 1]; 0 = default",
    "text guidance scale; 0 = default",
    "denoising steps; 0 = default",
    "noise seed shared by all frames",
    "model path; empty = embedded default model",
    "frames of lookahead (0..15); output is delayed by this many frames",
    "ControlNet path (folder or .safetensors); empty = none",
    "ControlNet preprocessor: canny or tile (empty = canny)",
    "ControlNet conditioning scale; 0 = 1"
};

typedef struct instance {
    unsigned width, height;
    char *strings[P_COUNT];     /* string parameters (owned) */
    double numbers[P_COUNT];    /* numeric parameters */
    diff_edit_model *model;
    diff_edit_ctx *ctx;
    diff_edit_controlnet *net;
    int started;
    uint64_t frames_in;
    uint64_t frames_out;
} instance;

static void die(instance *in, const char *what, diff_edit_status st) {
    const char *msg = diff_edit_last_error(in ? in->ctx : NULL);
    fprintf(stderr, "diffedit frei0r: error: %s: %s (%s)\n", what, msg[0] ? msg : "no message",
            diff_edit_status_string(st));
    exit(1);
}

int f0r_init(void) { return 1; }
void f0r_deinit(void) {}

void f0r_get_plugin_info(f0r_plugin_info_t *info) {
    info->name = "diffedit";
    info->author = "diffedit";
    info->plugin_type = F0R_PLUGIN_TYPE_FILTER;
    info->color_model = F0R_COLOR_MODEL_RGBA8888;
    info->frei0r_version = FREI0R_MAJOR_VERSION;
    info->major_version = 0;
    info->minor_version = 1;
    info->num_params = P_COUNT;
    info->explanation = "text-guided, temporally consistent video editing with diffusion models (diffedit)";
}

void f0r_get_param_info(f0r_param_info_t *info, int index) {
    if (index < 0 || index >= P_COUNT) return;
    info->name = param_names[index];
    info->type = param_types[index];
    info->explanation = param_help[index];
}

f0r_instance_t f0r_construct(unsigned int width, unsigned int height) {
    instance *in = calloc(1, sizeof *in);
    if (!in) return NULL;
    in->width = width;
    in->height = height;
    return in;
}

void f0r_destruct(f0r_instance_t inst) {
    instance *in = inst;
    if (!in) return;
    if (in->started) diff_edit_stream_end(in->ctx);
    diff_edit_ctx_free(in->ctx);
    diff_edit_controlnet_free(in->net);
    diff_edit_model_free(in->model);
    for (int i = 0; i < P_COUNT; i++) free(in->strings[i]);
    free(in);
}

void f0r_set_param_value(f0r_instance_t inst, f0r_param_t param, int index) {
    instance *in = inst;
    if (!in || !param || index < 0 || index >= P_COUNT) return;
    if (param_types[index] == F0R_PARAM_STRING) {
        const char *s = *(f0r_param_string *)param;
        free(in->strings[index]);
        in->strings[index] = s ? strdup(s) : NULL;
    } else {
        in->numbers[index] = *(f0r_param_double *)param;
    }
}

void f0r_get_param_value(f0r_instance_t inst, f0r_param_t param, int index) {
    instance *in = inst;
    if (!in || !param || index < 0 || index >= P_COUNT) return;
    if (param_types[index] == F0R_PARAM_STRING) {
        *(f0r_param_string *)param = in->strings[index] ? in->strings[index] : (char *)"";
    } else {
        *(f0r_param_double *)param = in->numbers[index];
    }
}

static const char *str(instance *in, int i) { return in->strings[i] ? in->strings[i] : ""; }

/* A whole non-negative number within [0, max], or exit with a message naming the parameter. */
static uint64_t whole(instance *in, int i, double max) {
    double v = in->numbers[i];
    if (!(v >= 0 && v <= max) || v != (double)(uint64_t)v) {
        fprintf(stderr, "diffedit frei0r: error: parameter %s: %g is not a whole number in [0, %.0f]\n",
                param_names[i], v, max);
        exit(1);
    }
    return (uint64_t)v;
}

static void start(instance *in) {
    diff_edit_method method;
    const char *m = str(in, P_METHOD);
    if (!m[0] || !strcmp(m, "auto")) method = DIFF_EDIT_METHOD_AUTO;
    else if (!strcmp(m, "sdedit")) method = DIFF_EDIT_METHOD_SDEDIT;
    else if (!strcmp(m, "ddim")) method = DIFF_EDIT_METHOD_DDIM;
    else if (!strcmp(m, "p2p")) method = DIFF_EDIT_METHOD_P2P;
    else if (!strcmp(m, "instruct")) method = DIFF_EDIT_METHOD_INSTRUCT;
    else if (!strcmp(m, "inpaint")) method = DIFF_EDIT_METHOD_INPAINT;
    else {
        fprintf(stderr, "diffedit frei0r: error: parameter method: \"%s\" is not one of auto, sdedit, ddim, p2p, instruct, inpaint\n", m);
        exit(1);
    }
    if (!str(in, P_PROMPT)[0]) {
        fprintf(stderr, "diffedit frei0r: error: parameter prompt is empty (filter_params=PROMPT|SOURCE|METHOD|...)\n");
        exit(1);
    }
    uint64_t steps = whole(in, P_STEPS, 1000);
    uint64_t seed = whole(in, P_SEED, 9007199254740992.0);
    uint64_t lookahead = whole(in, P_LOOKAHEAD, 15);

    diff_edit_model_params mp;
    diff_edit_model_params_default(&mp);
    mp.path = str(in, P_MODEL)[0] ? str(in, P_MODEL) : NULL;
    diff_edit_status st = diff_edit_model_load(&mp, &in->model);
    if (st != DIFF_EDIT_OK) die(NULL, "loading the model", st);
    st = diff_edit_ctx_create(in->model, &in->ctx);
    if (st != DIFF_EDIT_OK) die(NULL, "creating a context", st);

    diff_edit_params p;
    diff_edit_params_default(&p);
    p.method = method;
    p.prompt = str(in, P_PROMPT);
    p.source_prompt = str(in, P_SOURCE)[0] ? str(in, P_SOURCE) : NULL;
    p.strength = (float)in->numbers[P_STRENGTH];
    p.guidance = (float)in->numbers[P_GUIDANCE];
    p.steps = (uint32_t)steps;
    p.seed = seed;
    diff_edit_control control;
    if (str(in, P_CONTROLNET)[0]) {
        const char *c = str(in, P_CONTROL)[0] ? str(in, P_CONTROL) : "canny";
        double scale = in->numbers[P_CONTROL_SCALE] == 0 ? 1.0 : in->numbers[P_CONTROL_SCALE];
        st = diff_edit_controlnet_load(in->model, str(in, P_CONTROLNET), &in->net);
        if (st != DIFF_EDIT_OK) die(NULL, "parameter controlnet", st);
        diff_edit_control_default(&control);
        control.net = in->net;
        control.preprocessor = c;
        control.scale = (float)scale;
        p.n_controls = 1;
        p.controls = &control;   /* read by diff_edit_stream_begin only */
    }
    st = diff_edit_stream_set_lookahead(in->ctx, (uint32_t)lookahead);
    if (st != DIFF_EDIT_OK) die(in, "parameter lookahead", st);
    st = diff_edit_stream_begin(in->ctx, &p, in->width, in->height, DIFF_EDIT_RGBA8);
    if (st != DIFF_EDIT_OK) die(in, "starting the stream", st);
    in->started = 1;
}

void f0r_update(f0r_instance_t inst, double time, const uint32_t *inframe, uint32_t *outframe) {
    (void)time;
    instance *in = inst;
    if (!in || !inframe || !outframe) return;
    if (!in->started) start(in);
    diff_edit_buffer src = { in->width, in->height, in->width * 4, DIFF_EDIT_RGBA8, (void *)inframe };
    diff_edit_buffer dst = { in->width, in->height, in->width * 4, DIFF_EDIT_RGBA8, outframe };
    diff_edit_status st = diff_edit_stream_push(in->ctx, &src);
    if (st != DIFF_EDIT_OK) die(in, "editing a frame", st);
    in->frames_in++;
    st = diff_edit_stream_pull(in->ctx, &dst);
    if (st == DIFF_EDIT_OK) {
        in->frames_out++;
    } else if (st == DIFF_EDIT_AGAIN) {
        /* still inside the lookahead: show the unedited input */
        memcpy(outframe, inframe, (size_t)in->width * in->height * 4);
    } else {
        die(in, "reading an edited frame", st);
    }
}
