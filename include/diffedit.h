/*
 * diffedit.h — the stable C ABI of libdiffedit (text-guided image and video editing with diffusion
 * models of the Stable Diffusion 1.x/2.x family).
 *
 * ABI version 1. C99. Link with `pkg-config --cflags --libs diffedit` (-ldiffedit). The library is
 * libdiffedit.so.0 (SONAME); it carries its own Swift runtime, so a C host needs no Swift installed.
 * Only symbols named diff_edit_* are exported.
 *
 * Stability rules
 *   - Names, enum values and struct layouts below are append-only: an enum value is never reused, a
 *     struct only ever gains fields at its end, a function never changes its signature.
 *   - Extensible structs (diff_edit_model_params, diff_edit_params) start with `struct_size`, which
 *     the caller sets to sizeof(the struct it was compiled against) — the *_default() functions do
 *     that. The library reads min(struct_size, sizeof(its own struct)) bytes and uses defaults for
 *     fields it did not read. struct_size == 0 is DIFF_EDIT_ERR_INVALID_ARGUMENT. A struct_size
 *     larger than the library knows is accepted only when every byte past the known part is zero;
 *     otherwise the call returns DIFF_EDIT_ERR_UNSUPPORTED (the rule of Linux's openat2/clone3), so a
 *     newer caller asking for a feature this library lacks gets an error, never a silent ignore.
 *
 * Errors
 *   Every failing call returns a diff_edit_status and records a message that names the argument or
 *   field at fault (for example "params->strength is NaN"). diff_edit_last_error(ctx) returns the
 *   last message on a context, diff_edit_last_error(NULL) the last one on the calling thread (every
 *   failure is recorded there too, including failed loads and calls with a NULL context).
 *   The library never aborts or exits the process on bad input.
 *
 * Memory
 *   The caller owns all pixel memory (inputs and outputs are caller-allocated). The library owns
 *   models, contexts and the strings it returns; strings are never to be freed by the caller.
 *
 * Threads
 *   A context runs one call at a time: a second call on a context while one is running returns
 *   DIFF_EDIT_ERR_BUSY at once. Different contexts — over one shared model or not — run in parallel.
 *   diff_edit_model_set_loras changes a model's weights: it returns DIFF_EDIT_ERR_BUSY while a context of
 *   the model runs a call or has a stream open, and a call that starts while it runs returns BUSY.
 *   Nothing is process-global. diff_edit_cancel is safe from any thread and from inside callbacks.
 *   Callbacks (progress, log) run on the thread that made the call.
 */
#ifndef DIFFEDIT_H
#define DIFFEDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The one export macro. The library is built with -fvisibility=hidden and a version script that
 * exports only diff_edit_*; DIFF_EDIT_API marks the public declarations. */
#if defined(_WIN32)
#  if defined(DIFF_EDIT_BUILD)
#    define DIFF_EDIT_API __declspec(dllexport)
#  else
#    define DIFF_EDIT_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) || defined(__clang__)
#  define DIFF_EDIT_API __attribute__((visibility("default")))
#else
#  define DIFF_EDIT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------------
 * Versions
 * ---------------------------------------------------------------------------------------------- */

/** The ABI version this header describes. Compare it with diff_edit_abi_version() at run time. */
#define DIFF_EDIT_ABI_VERSION 1

/** Largest width and height, in pixels, of any image, frame or mask the library accepts. */
#define DIFF_EDIT_MAX_DIMENSION 16384u

/** Largest `steps` value in diff_edit_params. */
#define DIFF_EDIT_MAX_STEPS 1000u

/** Largest `guidance` and `image_guidance` values in diff_edit_params. */
#define DIFF_EDIT_MAX_GUIDANCE 100.0f

/**
 * The ABI version of the loaded library (DIFF_EDIT_ABI_VERSION of the header it was built from).
 * A host built against version N works with any library reporting N.
 * Never fails. Thread-safe.
 */
DIFF_EDIT_API uint32_t diff_edit_abi_version(void);

/**
 * The library's version as a static string, e.g. "0.1.0". Owned by the library, valid for the life
 * of the process, never NULL. Never fails. Thread-safe.
 */
DIFF_EDIT_API const char *diff_edit_version(void);

/* ------------------------------------------------------------------------------------------------
 * Status codes and errors
 * ---------------------------------------------------------------------------------------------- */

/** Result of every call that can fail. Values are explicit and never reused. */
typedef enum diff_edit_status {
    DIFF_EDIT_OK = 0,                      /**< success */
    DIFF_EDIT_CANCELLED = 1,               /**< stopped by diff_edit_cancel or a progress callback
                                                returning false; outputs are left unwritten */
    DIFF_EDIT_ERR_INVALID_ARGUMENT = -1,   /**< a NULL pointer, bad size, stride, format, value */
    DIFF_EDIT_ERR_UNSUPPORTED = -2,        /**< valid request this library or model cannot do
                                                (method, model type, unknown non-zero struct tail) */
    DIFF_EDIT_ERR_OUT_OF_MEMORY = -3,      /**< an allocation failed ("out of memory allocating N
                                                bytes for ..."), or an estimate from the configs
                                                was above max_memory / the machine's memory (the
                                                message gives the numbers); nothing is lost: the
                                                model and the context stay usable */
    DIFF_EDIT_ERR_BACKEND = -4,            /**< the compute backend failed (e.g. CUDA requested
                                                but unusable) */
    DIFF_EDIT_ERR_IO = -5,                 /**< a file could not be found or read */
    DIFF_EDIT_ERR_MODEL = -6,              /**< model files are malformed or inconsistent */
    DIFF_EDIT_ERR_BUSY = -7,               /**< the context is running another call (or the model's
                                                LoRA set is being changed / cannot change now) */
    DIFF_EDIT_AGAIN = 2                    /**< streams: no edited frame is ready yet; push more
                                                frames or end the stream (not a failure; appended) */
} diff_edit_status;

/**
 * A short static English name of a status, e.g. "invalid argument". Unknown values give
 * "unknown status". Owned by the library, never NULL, valid for the life of the process.
 * Never fails. Thread-safe.
 */
DIFF_EDIT_API const char *diff_edit_status_string(diff_edit_status status);

typedef struct diff_edit_ctx diff_edit_ctx;     /**< one editing session over a model (opaque) */
typedef struct diff_edit_model diff_edit_model; /**< loaded weights, shareable (opaque) */

/**
 * The message of the last failure.
 *   ctx != NULL: the last failure of a call on that context (any status other than DIFF_EDIT_OK
 *                and DIFF_EDIT_AGAIN, which are not failures).
 *                DIFF_EDIT_ERR_BUSY is the exception: the running call owns the context, so BUSY is
 *                recorded only for the calling thread.
 *   ctx == NULL: the last failure of any call made on the calling thread (covers failed loads and
 *                calls made with a NULL context).
 * Returns "" when nothing failed yet; never NULL. The string is owned by the library and stays valid
 * until the next failing call on the same context (ctx != NULL) or thread (ctx == NULL), or until the
 * context is freed. Messages name the argument or field at fault, e.g. "input->stride (12) is smaller
 * than width * 3 (15)". A successful call does not clear the message.
 * Thread rules: for ctx != NULL, do not call it while another thread runs a call on that context.
 */
DIFF_EDIT_API const char *diff_edit_last_error(const diff_edit_ctx *ctx);

/* ------------------------------------------------------------------------------------------------
 * Pixel buffers
 * ---------------------------------------------------------------------------------------------- */

/** Interleaved 8-bit pixel layouts. Bytes per pixel: 3, 4, 3, 4, 1. */
typedef enum diff_edit_pixel_format {
    DIFF_EDIT_RGB8 = 0,
    DIFF_EDIT_RGBA8 = 1,   /**< alpha is copied from input to output unchanged */
    DIFF_EDIT_BGR8 = 2,
    DIFF_EDIT_BGRA8 = 3,   /**< alpha is copied from input to output unchanged */
    DIFF_EDIT_GRAY8 = 4    /**< also the format of masks: 255 = edit, 0 = keep */
} diff_edit_pixel_format;

/**
 * A caller-owned image. `stride` is the number of bytes from one row to the next and must be at
 * least width * bytes-per-pixel; bytes past width * bytes-per-pixel in a row are never read or
 * written. width and height are 1..DIFF_EDIT_MAX_DIMENSION. `data` must hold stride * (height - 1)
 * + width * bytes-per-pixel bytes.
 * Outputs have the input's width and height, any format: colour is converted (GRAY8 output gets
 * ITU-R BT.601 luma); alpha of an RGBA8/BGRA8 input is copied unchanged to an RGBA8/BGRA8 output, and
 * an output with alpha from an input without alpha gets 255. An output may be the very same memory
 * as its input (same data, stride and format): the input is fully read before the output is written.
 */
typedef struct diff_edit_buffer {
    uint32_t width;
    uint32_t height;
    uint32_t stride;
    diff_edit_pixel_format format;
    void *data;
} diff_edit_buffer;

/* ------------------------------------------------------------------------------------------------
 * Callbacks
 * ---------------------------------------------------------------------------------------------- */

/** Log levels passed to diff_edit_log_fn. */
#define DIFF_EDIT_LOG_DEBUG 0
#define DIFF_EDIT_LOG_INFO 1
#define DIFF_EDIT_LOG_WARN 2
#define DIFF_EDIT_LOG_ERROR 3

/**
 * Progress: called on the calling thread after each denoising step (step counts 1..steps within a
 * frame; frame counts 0..frames-1; frames is 1 for diff_edit_image). Return true to continue, false
 * to cancel: the call then returns DIFF_EDIT_CANCELLED. It may call diff_edit_cancel, but no other
 * function on the same context (that returns DIFF_EDIT_ERR_BUSY). It may call any function on other
 * contexts, including editing calls on another context of the same model: no library lock is held
 * while a callback runs (the callback runs between denoising steps; that edit runs before this one
 * continues).
 */
typedef bool (*diff_edit_progress_fn)(void *user, uint32_t step, uint32_t steps, uint32_t frame,
                                      uint32_t frames);

/**
 * Log: called with a level (DIFF_EDIT_LOG_*) and a NUL-terminated message that is valid only during
 * the call. Used by diff_edit_model_load (e.g. "backend auto: CUDA unusable, using CPU") and by the
 * contexts of that model. Called on the thread that made the library call.
 */
typedef void (*diff_edit_log_fn)(void *user, int level, const char *message);

/* ------------------------------------------------------------------------------------------------
 * Models
 * ---------------------------------------------------------------------------------------------- */

/** How to load a model. Extensible struct: see "Stability rules" at the top. */
typedef struct diff_edit_model_params {
    uint32_t struct_size;   /**< sizeof(diff_edit_model_params); 0 is invalid */
    const char *path;       /**< a diffusers folder (model_index.json, unet/, vae/, text_encoder/,
                                 tokenizer/, scheduler/) or a single-file .safetensors checkpoint;
                                 NULL or "" = the default model installed with the library
                                 (PREFIX/share/diffedit/models/toy-instruct; the environment variable
                                 DIFFEDIT_DEFAULT_MODEL overrides where it is looked for).
                                 Bytes, as POSIX paths are: need not be UTF-8 (messages show such a
                                 path with \xHH escapes) */
    const char *backend;    /**< "auto" (CUDA when usable, else CPU, with a log line), "cpu" or
                                 "cuda" (fails with DIFF_EDIT_ERR_BACKEND when unusable);
                                 NULL = "auto" */
    int32_t device;         /**< GPU index for cuda/auto, >= 0 */
    int32_t n_threads;      /**< CPU threads, >= 0; 0 = all cores */
    diff_edit_log_fn log;   /**< optional log callback, NULL = silent */
    void *log_user;         /**< passed to log */
    uint64_t max_memory;    /**< bytes the model may use, its weights (as f32) and the working set of
                                 each request together; 0 = the memory available when loading (Linux
                                 MemAvailable) for the weights and the machine's memory for a request.
                                 The weights' size is estimated from the configs before any tensor is
                                 read; over the limit the load fails with DIFF_EDIT_ERR_OUT_OF_MEMORY
                                 and a message with both numbers. ControlNets loaded for the model
                                 (diff_edit_controlnet_load) count against it too. A request whose
                                 estimated working set does not fit beside them fails the same way
                                 before it runs (before the input is even converted), with the
                                 max_memory it would need (the working size of an edit is the model's,
                                 not the caller's to choose). An edit's working set includes the
                                 pictures it holds at the input's size: about 6 bytes per input pixel,
                                 11 with a mask, one more with alpha (the caller's buffers are not
                                 counted) */
    const char *weights_dtype; /**< how linear and conv weights stay in memory on the CPU backend:
                                 "auto" (NULL or "" = the default: as the file stores them, an fp16 / bf16
                                 checkpoint read in place from the memory-mapped file, never widened),
                                 "f32", "f16", "bf16" or "q8_0" (8-bit blocks of 32 with an fp16 scale, as
                                 GGUF). Biases, norms and embeddings stay f32; the CUDA backend keeps its own
                                 16-bit copies whatever this says. Another name is
                                 DIFF_EDIT_ERR_INVALID_ARGUMENT naming params->weights_dtype */
} diff_edit_model_params;

/**
 * Fills *params with the defaults: struct_size = sizeof(diff_edit_model_params), path NULL (default
 * model), backend "auto", device 0, n_threads 0, no log callback, max_memory 0 (available memory), weights_dtype NULL (auto). NULL params is ignored.
 * Never fails. Thread-safe.
 */
DIFF_EDIT_API void diff_edit_model_params_default(diff_edit_model_params *params);

/**
 * Loads a model (weights, tokenizer, scheduler config) and sets *out to it.
 * Ownership: the caller owns *out and releases it with diff_edit_model_free. The library copies
 * what it needs from params; the strings need not outlive the call. On failure *out is set to NULL
 * (when out is not NULL) and the message is recorded for the calling thread (diff_edit_last_error(NULL)).
 * Returns DIFF_EDIT_OK; DIFF_EDIT_ERR_INVALID_ARGUMENT (params or out NULL, struct_size 0, unknown
 * backend, negative device or n_threads); DIFF_EDIT_ERR_UNSUPPORTED (non-zero unknown struct tail,
 * unsupported model architecture); DIFF_EDIT_ERR_IO (path missing or unreadable);
 * DIFF_EDIT_ERR_MODEL (malformed or inconsistent model files); DIFF_EDIT_ERR_BACKEND ("cuda" asked
 * but unusable); DIFF_EDIT_ERR_OUT_OF_MEMORY (the weights, estimated from the configs, are larger than
 * params->max_memory or the available memory: nothing was allocated for them).
 * Thread-safe: several threads may load models at once.
 */
DIFF_EDIT_API diff_edit_status diff_edit_model_load(const diff_edit_model_params *params,
                                                    diff_edit_model **out);

/**
 * Releases the caller's reference to a model. Contexts created from it keep the weights alive, so
 * a model may be freed before its contexts; the memory goes when the last of them is freed.
 * NULL is ignored. Must not be called twice on the same pointer, nor while another thread passes the
 * same pointer to diff_edit_ctx_create. Calls running on its contexts are not affected.
 */
DIFF_EDIT_API void diff_edit_model_free(diff_edit_model *model);

/** A LoRA file and its strength, for diff_edit_model_set_loras. Extensible struct: see "Stability rules"
 *  at the top (every element of one array has the same struct_size, which is also the array's stride). */
typedef struct diff_edit_lora {
    uint32_t struct_size;   /**< sizeof(diff_edit_lora); 0 is invalid */
    const char *path;       /**< a LoRA .safetensors: diffusers/PEFT (unet.* / text_encoder.* with lora_A/lora_B
                                 or lora.down/lora.up, alpha from the file's lora_adapter_metadata) or kohya
                                 sd-scripts (lora_unet_*, lora_te_*, .lora_down/.lora_up/.alpha, diffusers or
                                 original LDM module names, LoCon conv entries); UTF-8 */
    float scale;            /**< strength: diffusers' fuse_lora(lora_scale = scale); finite; 1 = as trained,
                                 0 = no effect, negative inverts */
} diff_edit_lora;

/**
 * Fills *lora with the defaults: struct_size = sizeof(diff_edit_lora), path NULL, scale 1. NULL is
 * ignored. Never fails. Thread-safe.
 */
DIFF_EDIT_API void diff_edit_lora_default(diff_edit_lora *lora);

/**
 * Replaces the set of LoRA files fused into the model's weights (UNet and text encoder) by loras[0..n):
 * W = W0 + sum_i scale_i * alpha_i / rank_i * up_i @ down_i, as diffusers' load_lora_weights(path) then
 * fuse_lora(lora_scale = scale) for each file. n = 0 (loras may then be NULL) removes every LoRA: the
 * weights are the base weights again, bit for bit. The base checkpoint is not read again: the original
 * values of the weights a LoRA touches are kept (memory: one copy of each touched weight) and each new set
 * is fused from them. It applies to every context of the model (diff_edit_image, diff_edit_video,
 * streams) from their next call on; cached inversions of earlier calls are not reused.
 * Every file is read and checked before any weight changes: on failure the model keeps the set it had
 * and stays usable. Files are read during the call only (the caller may change or delete them after).
 * Returns DIFF_EDIT_OK; DIFF_EDIT_ERR_INVALID_ARGUMENT (model NULL, loras NULL with n > 0, a struct_size
 * 0 or different from loras[0].struct_size, path NULL or not UTF-8, scale NaN or infinite; the message
 * names the element and field); DIFF_EDIT_ERR_IO (a file missing or unreadable); DIFF_EDIT_ERR_MODEL (not
 * a LoRA file, a key it cannot place in this model, e.g. a layer this architecture does not have, or a
 * tensor whose shape does not fit the model's weight: a LoRA made for another architecture; the message
 * names the file and the key or tensor); DIFF_EDIT_ERR_UNSUPPORTED (LyCORIS LoHa/LoKr, DoRA, full-diff
 * or SDXL second-text-encoder keys, or a non-zero unknown struct tail; the message names the key);
 * DIFF_EDIT_ERR_BUSY (a call is running on a context of this model, from any thread or from inside its
 * progress callback, or a context of the model has a stream open: begun and not yet ended and drained);
 * DIFF_EDIT_ERR_OUT_OF_MEMORY (the fused copies or their upload to the backend did not fit; the model is
 * then back at its base weights with no LoRA). Messages go to diff_edit_last_error(NULL).
 * Thread-safe: concurrent calls on one model are serialised; a diff_edit_image etc. on a context of the
 * model that starts while this call changes the weights returns DIFF_EDIT_ERR_BUSY.
 */
DIFF_EDIT_API diff_edit_status diff_edit_model_set_loras(diff_edit_model *model, const diff_edit_lora *loras,
                                                         uint32_t n);

/* ------------------------------------------------------------------------------------------------
 * Contexts
 * ---------------------------------------------------------------------------------------------- */

/**
 * Creates an editing session over a model and sets *out to it. Any number of contexts may share
 * one model, and different contexts may be called in parallel from different threads (none of them
 * returns BUSY because of another; the compute of contexts sharing one model's backend may be taken
 * in turns, so parallel calls on one model are safe but not necessarily faster).
 * Ownership: the caller owns *out and releases it with diff_edit_ctx_free; the context holds its
 * own reference to the model. On failure *out is set to NULL (when out is not NULL).
 * Returns DIFF_EDIT_OK; DIFF_EDIT_ERR_INVALID_ARGUMENT (model or out NULL);
 * DIFF_EDIT_ERR_OUT_OF_MEMORY. Messages go to diff_edit_last_error(NULL).
 * Thread-safe.
 */
DIFF_EDIT_API diff_edit_status diff_edit_ctx_create(diff_edit_model *model, diff_edit_ctx **out);

/**
 * Frees a context (its last-error string and its stream, if any: see diff_edit_stream_end) and drops
 * its reference to the model. NULL is ignored. Must not be called while a call on the context is
 * running (from any thread, including from inside its progress callback), nor twice on the same
 * pointer. Other contexts are not affected.
 */
DIFF_EDIT_API void diff_edit_ctx_free(diff_edit_ctx *ctx);

/* ------------------------------------------------------------------------------------------------
 * Editing
 * ---------------------------------------------------------------------------------------------- */

/** Editing methods. */
typedef enum diff_edit_method {
    DIFF_EDIT_METHOD_AUTO = 0,     /**< INSTRUCT for an instruct checkpoint (8-channel UNet input),
                                        INPAINT for an inpainting checkpoint (9 channels; needs a
                                        mask), else P2P when source_prompt is set, else SDEDIT */
    DIFF_EDIT_METHOD_SDEDIT = 1,   /**< noise to `strength`, denoise with `prompt` (SDEdit) */
    DIFF_EDIT_METHOD_DDIM = 2,     /**< DDIM inversion with source_prompt, regenerate with `prompt`;
                                        needs source_prompt */
    DIFF_EDIT_METHOD_P2P = 3,      /**< Prompt-to-Prompt over a DDIM inversion; needs source_prompt */
    DIFF_EDIT_METHOD_INSTRUCT = 4, /**< InstructPix2Pix; needs an instruct checkpoint; `prompt` is
                                        the instruction */
    DIFF_EDIT_METHOD_INPAINT = 5   /**< repaint params->mask (255 = repaint; required) with `prompt`;
                                        needs an inpainting checkpoint (UNet with 9 input channels);
                                        = diffusers' StableDiffusionInpaintPipeline, strength default 1
                                        (pure noise in the mask), < 1 keeps some of the input. Pixels
                                        where the mask is 0 are the input's bytes. On a large image
                                        with a small mask, the mask's surroundings are repainted at the
                                        model's native size and composited back. */
} diff_edit_method;

/* ------------------------------------------------------------------------------------------------
 * ControlNet (appended): diff_edit_controlnet_load below; attached per call through
 * diff_edit_params.controls.
 * ---------------------------------------------------------------------------------------------- */

/** A loaded ControlNet (opaque), made for one model: diff_edit_controlnet_load. */
typedef struct diff_edit_controlnet diff_edit_controlnet;

/**
 * One ControlNet of a call with its input and schedule (diffusers: one entry of MultiControlNet).
 * Extensible struct (see "Stability rules"); in the params->controls array every entry has the
 * struct_size of entry 0 and entries are struct_size bytes apart. Fill with diff_edit_control_default.
 * Exactly one of preprocessor and image is set.
 */
typedef struct diff_edit_control {
    uint32_t struct_size;             /**< sizeof(diff_edit_control); 0 is invalid */
    const diff_edit_controlnet *net;  /**< required; loaded for the context's model */
    const char *preprocessor;         /**< "canny" (cv2.Canny(gray, 100, 200) of the input, as 3
                                           equal channels), "tile" (the input itself) or "inpaint"
                                           (the input with params->mask's pixels > 127 set to -1;
                                           needs params->mask); NULL when image is given */
    const diff_edit_buffer *image;    /**< a control image, any format, the input's size (video:
                                           frames_in[0]'s; the same map for every frame); NULL when
                                           preprocessor is given. Read during the call only */
    float scale;                      /**< conditioning scale (default 1; 0 turns the net off; NaN
                                           and infinite are invalid) */
    float start;                      /**< fraction of the steps where the net starts acting, [0, 1]
                                           (default 0) */
    float end;                        /**< fraction of the steps where it stops, (start, 1]
                                           (default 1). Step i of n acts when i/n >= start and
                                           (i+1)/n <= end (diffusers' control_guidance_start/end) */
} diff_edit_control;

/** Fills *control with the defaults: struct_size, no net, no input, scale 1, start 0, end 1.
 *  NULL is ignored. Never fails. Thread-safe. */
DIFF_EDIT_API void diff_edit_control_default(diff_edit_control *control);

/**
 * What to do. Extensible struct: see "Stability rules" at the top. Zero in guidance,
 * image_guidance, strength or steps means "the default": the model's recommendation when it
 * carries one (diffedit.json in a diffusers folder, "diffedit.edit_defaults" in a single file's
 * metadata), else the method's usual value (guidance 7.5, image guidance 1.5, strength 0.8, 30 steps).
 * P2P's LocalBlend threshold, dilation and words, direct inversion, attention-control fractions,
 * unconditional mix and new-word re-weighting have no field: the model's "blend_threshold",
 * "blend_dilation", "blend_next_word", "direct_inversion", "cross_replace_steps",
 * "self_replace_steps", "uncond_mix" and "new_word_weight" when it has them, else the paper's 0.3,
 * 1 (3x3), the swapped words only, off, 0.8, 0.4, and 0 (plain negative-prompt inversion) and 1
 * (no re-weighting).
 */
typedef struct diff_edit_params {
    uint32_t struct_size;            /**< sizeof(diff_edit_params); 0 is invalid */
    diff_edit_method method;         /**< one of diff_edit_method */
    const char *prompt;              /**< required (may be ""): target description, or the
                                          instruction for INSTRUCT; UTF-8 */
    const char *source_prompt;       /**< description of the input; required (not empty) by P2P
                                          and DDIM, ignored by SDEDIT/INSTRUCT; NULL = none */
    const char *negative_prompt;     /**< NULL = none */
    float guidance;                  /**< text classifier-free guidance, 0 (default) or finite in
                                          (0, DIFF_EDIT_MAX_GUIDANCE] */
    float image_guidance;            /**< INSTRUCT image guidance, 0 (default) or finite in
                                          (0, DIFF_EDIT_MAX_GUIDANCE] */
    float strength;                  /**< SDEDIT noise level, 0 (default) or finite in (0, 1]: the last
                                          floor(strength x steps) steps run (as diffusers' img2img);
                                          below 1/steps none runs and the result is the input's VAE
                                          reconstruction */
    uint32_t steps;                  /**< denoising steps, 0 (default) or 1..DIFF_EDIT_MAX_STEPS */
    uint64_t seed;                   /**< all randomness; same seed + same input = bit-identical
                                          output on the same machine and backend. Only the low 32
                                          bits matter (as torch.manual_seed's CPU generator, whose
                                          noise this is): seed and seed + 2^32 give the same output */
    const diff_edit_buffer *mask;    /**< optional GRAY8 mask, the input's size: 255 = edit,
                                          0 = keep; NULL = edit everywhere */
    diff_edit_buffer *mask_out;      /**< optional GRAY8 buffer, the input's size: receives the mask
                                          the method used (255 everywhere when it edited the whole
                                          image); NULL = not wanted */
    diff_edit_progress_fn progress;  /**< optional, per call */
    void *progress_user;             /**< passed to progress */
    uint32_t watermark;              /**< (appended) 1 = embed the invisible watermark in the
                                          output pixels (the 48-bit mark of diffusers' SDXL
                                          pipelines, read back by the invisible-watermark package's
                                          dwtDctSvd decoder); 0 (default) = none, so untouched
                                          pixels stay bit-identical. Outputs under 256 pixels in
                                          either side are never marked. Other values are
                                          DIFF_EDIT_ERR_INVALID_ARGUMENT */
    uint32_t n_controls;             /**< (appended) number of entries in controls; 0 = no ControlNet */
    const diff_edit_control *controls; /**< (appended) the ControlNets of this call, their residuals
                                          summed (MultiControlNet): SDEDIT = diffusers'
                                          StableDiffusionControlNetImg2ImgPipeline; DDIM, P2P,
                                          INSTRUCT, INPAINT add them to the edited branch's UNet
                                          items in every step (the source branch and the DDIM
                                          inversion get none: they must reconstruct the input);
                                          video: one map per frame. Messages name the entry
                                          ("params->controls[1].preprocessor"). Read during the call
                                          only; NULL when n_controls is 0 */
} diff_edit_params;

/**
 * Fills *params with the defaults: struct_size = sizeof(diff_edit_params), method AUTO, prompt ""
 * (a static empty string), no source or negative prompt, guidance/image_guidance/strength/steps 0
 * (method defaults), seed 0, no mask, no mask_out, no progress callback, watermark 0, no controls. NULL params
 * is ignored.
 * Never fails. Thread-safe.
 */
DIFF_EDIT_API void diff_edit_params_default(diff_edit_params *params);

/**
 * Edits one image: reads `input`, writes `output` (caller-allocated, the input's width and height,
 * any format). Any size from 1x1 to DIFF_EDIT_MAX_DIMENSION: the library resizes/pads to what the
 * model needs and back. Alpha is passed through (see diff_edit_buffer). Stride padding is never
 * written. With params->mask, pixels where the mask is 0 keep the input's colour.
 * Every argument is checked before anything is read or written; on any status other than
 * DIFF_EDIT_OK, output and mask_out are left untouched.
 * Returns DIFF_EDIT_OK; DIFF_EDIT_CANCELLED; DIFF_EDIT_ERR_INVALID_ARGUMENT (NULL ctx, params, input
 * or output; bad struct_size, method, buffer size, stride, format or data; output or mask size
 * different from the input; NaN, infinite or out-of-range guidance, image_guidance, strength or
 * steps; NULL prompt; P2P or DDIM without source_prompt; INPAINT (or AUTO on an inpainting
 * checkpoint) without mask; invalid UTF-8 in a string);
 * DIFF_EDIT_ERR_UNSUPPORTED (method not available for this model — INSTRUCT needs an instruct
 * checkpoint, an instruct checkpoint only does INSTRUCT, INPAINT needs an inpainting checkpoint and
 * an inpainting checkpoint only does INPAINT — or a non-zero unknown struct tail); DIFF_EDIT_ERR_OUT_OF_MEMORY; DIFF_EDIT_ERR_BACKEND;
 * DIFF_EDIT_ERR_BUSY (another call is running on ctx).
 * Thread rules: one call per context at a time; the callback runs on the calling thread.
 */
DIFF_EDIT_API diff_edit_status diff_edit_image(diff_edit_ctx *ctx, const diff_edit_params *params,
                                               const diff_edit_buffer *input,
                                               diff_edit_buffer *output);

/**
 * Edits a video given as n_frames frames: frames_in[i] -> frames_out[i] (arrays of n_frames
 * buffers; every frame has the size of frames_in[0]; frames_out[i] has the size of frames_in[i];
 * frames_out[i] may be frames_in[i]).
 * Method: the temporally consistent video method (docs/video_quality.md), the same as the streaming
 * API with its default lookahead: frames in windows of 4 (the first frame of each window is its
 * keyframe), one shared noise for every frame, cross-frame self-attention to the first frame, the
 * keyframe and the previous frame, keyframe features propagated through the source video's own
 * correspondences, and source-static pixel fusion. params->method picks the per-frame edit (SDEDIT,
 * DDIM, P2P, INSTRUCT, INPAINT as in diff_edit_image). Memory is bounded by the window, not by n_frames.
 * With params->mask, frames are edited one by one with diff_edit_image semantics and the same seed
 * (the consistent method takes no mask); params->mask_out then receives the mask of the last frame
 * (with no mask it is filled with 255).
 * The progress callback reports frame i of n_frames (the last frame of the window being edited).
 * All frames are checked before any is edited. On DIFF_EDIT_CANCELLED or an error while editing
 * a window, the frames of earlier windows are already written and the others are untouched.
 * Returns what diff_edit_image returns, plus DIFF_EDIT_ERR_INVALID_ARGUMENT for NULL frames_in or
 * frames_out, n_frames 0, or frames of different sizes (the message names the frame, e.g.
 * "frames_in[3].stride").
 * Thread rules: as diff_edit_image.
 */
DIFF_EDIT_API diff_edit_status diff_edit_video(diff_edit_ctx *ctx, const diff_edit_params *params,
                                               const diff_edit_buffer *frames_in, uint32_t n_frames,
                                               diff_edit_buffer *frames_out);

/**
 * Asks the call running on ctx to stop; it returns DIFF_EDIT_CANCELLED after the current step, and
 * the context stays usable. Without a running call it does nothing (the next call is not
 * affected). The one function that is safe from any thread or from inside a callback while a call
 * on ctx is running. NULL is ignored.
 */
DIFF_EDIT_API void diff_edit_cancel(diff_edit_ctx *ctx);

/**
 * Loads a ControlNet for `model` (appended): a diffusers ControlNetModel folder (config.json +
 * diffusion_pytorch_model.safetensors) or a single .safetensors, in the original layout
 * (control_model.*: lllyasviel's control_*.safetensors) or with diffusers names. A single file's
 * architecture comes from its tensor shapes and the model's UNet config. The weights go to the
 * model's backend.
 * Ownership: the caller owns *out and releases it with diff_edit_controlnet_free; the net keeps the
 * model's weights alive as long as it lives. On failure *out is set to NULL (when out is not NULL).
 * Returns DIFF_EDIT_OK; DIFF_EDIT_ERR_INVALID_ARGUMENT (NULL model, path or out; empty path);
 * DIFF_EDIT_ERR_IO (no such file); DIFF_EDIT_ERR_MODEL (not a ControlNet, a missing or misshapen
 * tensor, or a ControlNet made for another base model: the message names the tensor, e.g.
 * "control_model.zero_convs.3.0.weight"; or a config value out of range, naming the field);
 * DIFF_EDIT_ERR_UNSUPPORTED (pickle files, unsupported config); DIFF_EDIT_ERR_OUT_OF_MEMORY (the
 * net's weights, estimated from its config before any tensor is read, do not fit in what the model's
 * max_memory leaves beside its weights and the ControlNets loaded for it, or in the memory available
 * when max_memory is 0: the message names the file and the numbers).
 * Messages go to diff_edit_last_error(NULL).
 * Thread rules: thread-safe; a loaded net is immutable and may be used by any number of calls on
 * any contexts of its model at once.
 */
DIFF_EDIT_API diff_edit_status diff_edit_controlnet_load(diff_edit_model *model, const char *path,
                                                         diff_edit_controlnet **out);

/**
 * Frees a ControlNet. NULL is ignored. Must not be called while a call whose params name it is
 * running, nor twice on the same pointer.
 */
DIFF_EDIT_API void diff_edit_controlnet_free(diff_edit_controlnet *net);

/**
 * The control map a preprocessor makes of `input`, for hosts to show (appended): "canny", "tile"
 * or "inpaint" (with `mask`, GRAY8 of the input's size; masked pixels come out black). Written to
 * `output` (caller-allocated, the input's size, any format; alpha of RGBA/BGRA outputs set to 255).
 * The edit computes the same map at the size it works on (the input resized or padded to the
 * model's needs).
 * Returns DIFF_EDIT_OK; DIFF_EDIT_ERR_INVALID_ARGUMENT (unknown preprocessor, NULL or bad buffers,
 * sizes that differ, inpaint without mask). Messages go to diff_edit_last_error(NULL).
 * Thread-safe; needs no model.
 */
DIFF_EDIT_API diff_edit_status diff_edit_control_map(const char *preprocessor, const diff_edit_buffer *input,
                                                     const diff_edit_buffer *mask, diff_edit_buffer *output);

/* ------------------------------------------------------------------------------------------------
 * Provenance (appended)
 * ---------------------------------------------------------------------------------------------- */

/**
 * The provenance record of the last successful diff_edit_image, diff_edit_video or diff_edit_stream_begin
 * on ctx, as an XMP packet (UTF-8 XML, the same packet the CLI writes into its images) for a host to attach
 * to the image it saves: Iptc4xmpExt:DigitalSourceType
 * http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia, and diffedit's
 * record (namespace "urn:diffedit:xmp:1.0:"): software, command ("edit" or "video"), model (the last
 * component of the model's path), ModelSHA256 (SHA-256 of the weights: of the single file, or of the
 * sha256sum listing of a folder's weight files), method as resolved (AUTO says which), prompts, seed,
 * steps, guidance, image guidance (INSTRUCT), strength (SDEDIT) as used (defaults filled in), and whether
 * params->watermark marked the pixels.
 * Returns "" when there is none (no call yet, or the last one failed or was cancelled); never NULL.
 * The first request on a model hashes its weights (seconds for gigabytes; reading the files once): the hash
 * is cached per weight file beside it (<file>.diffedit-sha256) or, when that folder is read-only, in
 * $DIFFEDIT_CACHE_DIR, $XDG_CACHE_HOME/diffedit or ~/.cache/diffedit, and reused while the file's size and
 * modification time are unchanged; a model that cannot be hashed gets no ModelSHA256 (with a log line).
 * Lifetime: the string is owned by the context and stays valid until the next editing call on ctx
 * (diff_edit_image, diff_edit_video, diff_edit_stream_begin) or diff_edit_ctx_free. NULL ctx gives "".
 * Thread rules: as diff_edit_last_error (not while another thread runs a call on ctx).
 */
DIFF_EDIT_API const char *diff_edit_last_provenance(const diff_edit_ctx *ctx);

/* ------------------------------------------------------------------------------------------------
 * Streaming video (appended): for hosts that see one frame at a time, such as FFmpeg filters.
 * A context holds at most one stream. Frames are pushed in order and edited by the consistent video
 * method (as diff_edit_video) in windows of lookahead + 1 frames: a window is edited when its last
 * frame is pushed (that push takes the time) or at diff_edit_stream_end. Edited frames are pulled in
 * order; a frame can be pulled at most `lookahead` pushes after it was pushed. Streaming and
 * diff_edit_video give the same frames for the same parameters when the lookahead is the default 3.
 * Memory: the first frame plus one window. Alpha of RGBA8/BGRA8 frames passes through.
 * Thread rules: as diff_edit_image (one call per context at a time, else DIFF_EDIT_ERR_BUSY);
 * diff_edit_cancel stops a push or end that is editing (it returns DIFF_EDIT_CANCELLED and the stream
 * is then broken: end it and begin a new one; a cancelled end has already closed it; the context
 * stays usable).
 * ---------------------------------------------------------------------------------------------- */

/** Largest lookahead of diff_edit_stream_set_lookahead. */
#define DIFF_EDIT_MAX_LOOKAHEAD 15

/**
 * Sets the lookahead (0..DIFF_EDIT_MAX_LOOKAHEAD frames; default 3) of the next stream begun on ctx.
 * 0 edits every frame as soon as it is pushed (every frame is a keyframe: shared noise, attention to
 * and propagation from the first frame, pixel fusion); larger values edit windows of lookahead + 1
 * frames with propagation from each window's keyframe, at that much latency.
 * Returns DIFF_EDIT_OK; DIFF_EDIT_ERR_INVALID_ARGUMENT (NULL ctx, frames above the maximum);
 * DIFF_EDIT_ERR_BUSY.
 */
DIFF_EDIT_API diff_edit_status diff_edit_stream_set_lookahead(diff_edit_ctx *ctx, uint32_t frames);

/**
 * Begins a stream of width x height frames in `format` (RGB8, RGBA8, BGR8 or BGRA8) edited with
 * `params` (read now and copied: the strings need not outlive the call; params->progress is called
 * during later pushes and ends). params->mask (the stream's size, read now) is taken by INPAINT only: the
 * region to repaint in every frame; params->mask_out is not supported by streams.
 * A previous stream on ctx must have been ended (an ended stream's unpulled frames are dropped).
 * Returns DIFF_EDIT_OK; DIFF_EDIT_ERR_INVALID_ARGUMENT (NULL ctx or params, bad params as for
 * diff_edit_image, width/height 0 or above DIFF_EDIT_MAX_DIMENSION, bad format, a stream already
 * open, a mask of another size); DIFF_EDIT_ERR_UNSUPPORTED (method not available for this model, a mask
 * for a method other than INPAINT, mask_out set);
 * DIFF_EDIT_ERR_BUSY.
 */
DIFF_EDIT_API diff_edit_status diff_edit_stream_begin(diff_edit_ctx *ctx, const diff_edit_params *params,
                                                      uint32_t width, uint32_t height,
                                                      diff_edit_pixel_format format);

/**
 * Pushes the next frame (the stream's size and format; read before the call returns, so the caller
 * may reuse it). When the frame completes a window, the window is edited during this call.
 * Returns DIFF_EDIT_OK; DIFF_EDIT_CANCELLED; DIFF_EDIT_ERR_INVALID_ARGUMENT (NULL ctx or frame, no
 * stream begun, push after diff_edit_stream_end, a frame of another size or format, bad stride or
 * data, a broken stream); the errors of diff_edit_image while editing; DIFF_EDIT_ERR_BUSY.
 */
DIFF_EDIT_API diff_edit_status diff_edit_stream_push(diff_edit_ctx *ctx, const diff_edit_buffer *frame);

/**
 * Writes the next edited frame, in push order, into `out` (caller-allocated, the stream's size and
 * format; stride padding is never written).
 * Returns DIFF_EDIT_OK (a frame was written); DIFF_EDIT_AGAIN (no frame is ready yet: out untouched;
 * also before the first push); DIFF_EDIT_ERR_INVALID_ARGUMENT (NULL ctx or out, no stream, out of
 * another size or format, or the stream has ended and every frame was pulled: the stream is then
 * closed); DIFF_EDIT_ERR_BUSY.
 */
DIFF_EDIT_API diff_edit_status diff_edit_stream_pull(diff_edit_ctx *ctx, diff_edit_buffer *out);

/**
 * Ends the stream: edits the frames still waiting (the last, partial window), which can then be
 * pulled; no more pushes. Ending a broken (cancelled or failed) stream just closes it.
 * Lifetime: a stream's state (its frames, windows and copied params) lives in its context and never
 * outlives it. It is released by this call when the stream was broken, when editing the last window
 * fails or is cancelled, or when no edited frame is left to pull; otherwise by the
 * diff_edit_stream_pull after the last frame (the one that finds the ended stream drained and returns
 * DIFF_EDIT_ERR_INVALID_ARGUMENT), by the next diff_edit_stream_begin (which replaces an ended stream
 * and drops its unpulled frames), or, at the latest and whether ended or not, by diff_edit_ctx_free.
 * Returns DIFF_EDIT_OK; DIFF_EDIT_CANCELLED; DIFF_EDIT_ERR_INVALID_ARGUMENT (NULL ctx, no stream);
 * the errors of diff_edit_image while editing; DIFF_EDIT_ERR_BUSY.
 */
DIFF_EDIT_API diff_edit_status diff_edit_stream_end(diff_edit_ctx *ctx);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DIFFEDIT_H */
