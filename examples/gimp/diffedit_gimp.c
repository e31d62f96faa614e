/*
 * diffedit_gimp.c — GIMP 2.10 plug-in: "Filters > Generic > Diffusion Edit..." over libdiffedit.
 *
 * PDB procedure (stable, scripts rely on it):
 *   (plug-in-diffedit run-mode image drawable prompt source-prompt method strength guidance steps
 *                     seed model-path)  ->  new-layer
 *   prompt         STRING  target description (or the instruction for "instruct"); must not be empty
 *   source-prompt  STRING  description of the input ("" = none; needed by "ddim" and "p2p")
 *   method         STRING  "auto", "sdedit", "ddim", "p2p", "instruct" or "inpaint" (inpainting checkpoints; repaints the selection)
 *   strength       FLOAT   SDEdit noise level in (0, 1]; 0 = the method's default
 *   guidance       FLOAT   classifier-free guidance in (0, 100]; 0 = the method's default
 *   steps          INT32   denoising steps 1..1000; 0 = the method's default
 *   seed           INT32   any value >= 0 (same seed, same input: same result); < 0 = a random seed
 *   model-path     STRING  diffusers folder or single-file .safetensors; "" = the embedded default
 *   returns new-layer LAYER: a copy of the drawable, inserted just above it, holding the edit.
 *
 *   (plug-in-diffedit-ext run-mode image drawable prompt source-prompt method strength guidance steps
 *                         seed model-path lora-path lora-scale)  ->  new-layer
 *   the same, then
 *   lora-path      STRING  a LoRA .safetensors (diffusers/PEFT or kohya) fused into the model; "" = none
 *   lora-scale     FLOAT   its strength (diffusers' fuse_lora lora_scale; 1 = as trained; finite)
 *   (plug-in-diffedit itself uses no LoRA.)
 *
 * Behaviour
 *   - The selection, when there is one, is the mask (feathered selections blend); pixels outside it
 *     are bit-identical to the source in the new layer (copied in the layer's own precision). The
 *     library sees the selection's bounding box plus half its size on each side (at least 16 pixels)
 *     as context, so a small selection in a large layer keeps its resolution.
 *   - The source layer is never modified (non-destructive); the whole operation is one undo step.
 *   - Interactive mode: a GTK dialog with every parameter plus "Add the mask used as a layer mask";
 *     the edit runs on a worker thread while a progress window (with Cancel) and GIMP's progress bar
 *     update; Cancel stops the edit via diff_edit_cancel and leaves the image untouched.
 *   - Non-interactive (Script-Fu, batch) uses the arguments; RUN-WITH-LAST-VALS the last dialog values.
 *   - Bad input gives a clear message (gimp_message when interactive; the PDB error string otherwise)
 *     and never crashes: indexed images (convert to RGB first), a drawable that is not a layer,
 *     a floating selection, an empty prompt, an unknown method, a missing or broken model path,
 *     and every error of the library (diff_edit_last_error).
 *   - Grayscale images are edited in RGB and written back as gray; alpha is preserved.
 *
 * Environment
 *   DIFFEDIT_GIMP_ADD_LAYER_MASK=1   non-interactive calls also add the mask used as a layer mask (the
 *                                    PDB signature is fixed, so scripts ask for it this way).
 *   Test hooks (Tests/hosts/test_gimp.sh):
 *   DIFFEDIT_GIMP_CANCEL_AT_STEP=N   the progress callback cancels at step N.
 *   DIFFEDIT_GIMP_DIALOG_TEST="PROMPT|MODEL"  the interactive dialog fills in the prompt and model
 *                                    path, then presses OK by itself (checks the dialog under Xvfb).
 *
 * Build: make gimp (cc + pkg-config gimp-2.0 diffedit, rpath to the library), install with
 * make install-gimp [GIMP_PLUGIN_DIR=...].
 */
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include <stdlib.h>
#include <string.h>

#include <diffedit.h>

#define PLUG_IN_PROC   "plug-in-diffedit"
/* plug-in-diffedit-ext: the 11 arguments of plug-in-diffedit, then the settings added since, appended in
 * this order: lora-path, lora-scale, controlnet-path, control, control-scale. */
#define PLUG_IN_PROC_EXT "plug-in-diffedit-ext"
#define N_ARGS_EXT       16
#define PLUG_IN_BINARY "diffedit"
#define PLUG_IN_ROLE   "diffedit"

/* ------------------------------------------------------------------------------------------------
 * Parameters (also the persistent "last values": fixed-size, no pointers)
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    gchar   prompt[1024];
    gchar   source_prompt[1024];
    gchar   method[16];
    gdouble strength;
    gdouble guidance;
    gint32  steps;
    gint32  seed;
    gchar   model_path[4096];
    gboolean add_layer_mask;
    gchar   lora_path[4096];   /* "" = no LoRA */
    gdouble lora_scale;
    gchar   controlnet_path[4096];   /* "" = no ControlNet */
    gchar   control[16];             /* its preprocessor: canny, tile or inpaint */
    gdouble control_scale;
} EditVals;

static EditVals vals = { "", "", "auto", 0.0, 0.0, 0, 0, "", FALSE, "", 1.0, "", "canny", 1.0 };

static const char *const control_names[] = { "canny", "tile", "inpaint" };
#define N_CONTROLS ((int) G_N_ELEMENTS (control_names))

static const char *const method_names[] = { "auto", "sdedit", "ddim", "p2p", "instruct", "inpaint" };
static const diff_edit_method method_values[] = { DIFF_EDIT_METHOD_AUTO, DIFF_EDIT_METHOD_SDEDIT,
                                                  DIFF_EDIT_METHOD_DDIM, DIFF_EDIT_METHOD_P2P,
                                                  DIFF_EDIT_METHOD_INSTRUCT, DIFF_EDIT_METHOD_INPAINT };
#define N_METHODS ((int) G_N_ELEMENTS (method_names))

static void query (void);
static void run   (const gchar *name, gint nparams, const GimpParam *param, gint *nreturn_vals,
                   GimpParam **return_vals);

const GimpPlugInInfo PLUG_IN_INFO = { NULL, NULL, query, run };

MAIN ()

static void
query (void)
{
    static const GimpParamDef args[] = {
        { GIMP_PDB_INT32,    "run-mode",      "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1), RUN-WITH-LAST-VALS (2) }" },
        { GIMP_PDB_IMAGE,    "image",         "Input image" },
        { GIMP_PDB_DRAWABLE, "drawable",      "Input layer (edited within the selection, when there is one)" },
        { GIMP_PDB_STRING,   "prompt",        "Target description, or the instruction for method \"instruct\" (not empty)" },
        { GIMP_PDB_STRING,   "source-prompt", "Description of the input (\"\" = none; needed by \"ddim\" and \"p2p\")" },
        { GIMP_PDB_STRING,   "method",        "Editing method: \"auto\", \"sdedit\", \"ddim\", \"p2p\", \"instruct\" or \"inpaint\" (needs a selection)" },
        { GIMP_PDB_FLOAT,    "strength",      "SDEdit noise level in (0, 1]; 0 = the method's default" },
        { GIMP_PDB_FLOAT,    "guidance",      "Classifier-free guidance in (0, 100]; 0 = the method's default" },
        { GIMP_PDB_INT32,    "steps",         "Denoising steps 1..1000; 0 = the method's default" },
        { GIMP_PDB_INT32,    "seed",          "Random seed >= 0 (same seed and input: same result); < 0 = random" },
        { GIMP_PDB_STRING,   "model-path",    "Diffusers folder or single-file .safetensors; \"\" = the embedded default model" },
    };
    static const GimpParamDef return_vals[] = {
        { GIMP_PDB_LAYER, "new-layer", "The new layer above the drawable holding the edit" },
    };
    /* plug-in-diffedit-ext: the same arguments, then the settings added since (appended, in order) */
    GimpParamDef ext_args[N_ARGS_EXT];
    G_STATIC_ASSERT (G_N_ELEMENTS (args) + 5 == N_ARGS_EXT);
    memcpy (ext_args, args, sizeof args);
    ext_args[G_N_ELEMENTS (args)] = (GimpParamDef) { GIMP_PDB_STRING, "lora-path",
        "A LoRA .safetensors (diffusers/PEFT or kohya sd-scripts) fused into the model; \"\" = none" };
    ext_args[G_N_ELEMENTS (args) + 1] = (GimpParamDef) { GIMP_PDB_FLOAT, "lora-scale",
        "The LoRA's strength (diffusers' fuse_lora lora_scale): 1 = as trained, 0 = no effect; finite" };
    ext_args[G_N_ELEMENTS (args) + 2] = (GimpParamDef) { GIMP_PDB_STRING, "controlnet-path",
        "ControlNet: a diffusers ControlNetModel folder or a single .safetensors (control_*.safetensors) made "
        "for the model; \"\" = none" };
    ext_args[G_N_ELEMENTS (args) + 3] = (GimpParamDef) { GIMP_PDB_STRING, "control",
        "The ControlNet's control map from the layer: \"canny\", \"tile\" or \"inpaint\" (the selection's "
        "pixels masked; needs a selection)" };
    ext_args[G_N_ELEMENTS (args) + 4] = (GimpParamDef) { GIMP_PDB_FLOAT, "control-scale",
        "ControlNet conditioning scale (1 = as trained, 0 = off)" };

    gimp_install_procedure (PLUG_IN_PROC,
                            "Edit a layer with a text prompt using a diffusion model",
                            "Edits the layer within the selection (or all of it) as the prompt asks, "
                            "with a Stable Diffusion 1.x/2.x-family model through libdiffedit, and puts "
                            "the result into a new layer above it. Methods: auto, sdedit, ddim, p2p, "
                            "instruct, inpaint (inpainting checkpoints: repaints the selection; auto picks it). Pixels outside the selection are unchanged; the source layer is "
                            "not modified. Indexed images must be converted to RGB first.",
                            "diffedit authors", "diffedit authors", "2026",
                            "Diffusion _Edit...",
                            "RGB*, GRAY*, INDEXED*",
                            GIMP_PLUGIN,
                            G_N_ELEMENTS (args), G_N_ELEMENTS (return_vals),
                            args, return_vals);
    gimp_plugin_menu_register (PLUG_IN_PROC, "<Image>/Filters/Generic");

    gimp_install_procedure (PLUG_IN_PROC_EXT,
                            "Edit a layer with a text prompt using a diffusion model (more settings)",
                            "plug-in-diffedit with the settings added since, appended to its arguments: "
                            "lora-path and lora-scale (a LoRA file fused into the model at that strength), "
                            "controlnet-path, control and control-scale (a ControlNet that keeps the "
                            "layer's structure).",
                            "diffedit authors", "diffedit authors", "2026",
                            NULL,
                            "RGB*, GRAY*, INDEXED*",
                            GIMP_PLUGIN,
                            G_N_ELEMENTS (ext_args), G_N_ELEMENTS (return_vals),
                            ext_args, return_vals);
}

static int
control_index (const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < N_CONTROLS; i++)
        if (g_ascii_strcasecmp (name, control_names[i]) == 0)
            return i;
    return -1;
}

/* ------------------------------------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------------------------------- */

static int
method_index (const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < N_METHODS; i++)
        if (g_ascii_strcasecmp (name, method_names[i]) == 0)
            return i;
    return -1;
}

static void
copy_str (gchar *dst, gsize size, const gchar *src)
{
    g_strlcpy (dst, src ? src : "", size);
}

static gboolean
is_blank (const gchar *s)
{
    if (s == NULL)
        return TRUE;
    for (; *s; s++)
        if (!g_ascii_isspace (*s))
            return FALSE;
    return TRUE;
}

/* The edit's provenance (IPTC DigitalSourceType compositeWithTrainedAlgorithmicMedia plus diffedit's
 * record, an XMP packet from diff_edit_last_provenance) goes into the image's metadata, merged with what
 * the image already has, so that exporting (PNG, JPEG, ... with XMP export on, GIMP's default) writes it. */
static void
attach_provenance (gint32 image, const gchar *packet)
{
    GimpMetadata *md;
    GError       *error = NULL;

    if (packet == NULL || packet[0] == '\0')
        return;
    md = gimp_image_get_metadata (image);
    if (md == NULL)
        md = gimp_metadata_new ();
    if (md == NULL)
        return;
    if (gimp_metadata_set_from_xmp (md, (const guchar *) packet, (gint) strlen (packet), &error))
        gimp_image_set_metadata (image, md);
    else
        g_printerr ("Diffusion Edit: could not attach the provenance record: %s\n",
                    error ? error->message : "unknown error");
    g_clear_error (&error);
    g_object_unref (md);
}

/* ------------------------------------------------------------------------------------------------
 * The edit job: runs on a worker thread; the main thread polls its progress (libgimp calls are
 * made only from the main thread).
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    /* inputs */
    EditVals          v;
    guint64           seed;
    guint32           width, height;
    diff_edit_pixel_format format;
    guint8           *pixels;      /* width * height * bpp, input */
    guint8           *result;      /* same size, output */
    guint8           *mask;        /* width * height GRAY8 or NULL */
    guint8           *mask_out;    /* width * height GRAY8 or NULL */
    gint              cancel_at;   /* test hook: cancel at this step (0 = never) */
    diff_edit_controlnet *net;     /* loaded by the worker, NULL = none */
    /* shared state */
    diff_edit_ctx    *volatile ctx;
    gint              step, steps, frame, frames; /* atomics */
    gint              cancel_requested;           /* atomic */
    gint              done;                       /* atomic */
    /* outputs */
    diff_edit_status  status;
    gchar            *message;     /* owned; the library's message on failure */
    gchar            *provenance;  /* owned; the XMP packet of the edit (diff_edit_last_provenance) */
    GMutex            lock;        /* guards ctx against cancel vs free */
} EditJob;

static bool
job_progress (void *user, uint32_t step, uint32_t steps, uint32_t frame, uint32_t frames)
{
    EditJob *job = user;
    g_atomic_int_set (&job->step, (gint) step);
    g_atomic_int_set (&job->steps, (gint) steps);
    g_atomic_int_set (&job->frame, (gint) frame);
    g_atomic_int_set (&job->frames, (gint) frames);
    if (job->cancel_at > 0 && (gint) step >= job->cancel_at)
        return false;
    return !g_atomic_int_get (&job->cancel_requested);
}

static void
job_log (void *user, int level, const char *message)
{
    (void) user;
    if (level >= DIFF_EDIT_LOG_WARN)
        g_printerr ("diffedit: %s\n", message);
}

static gpointer
job_thread (gpointer data)
{
    EditJob              *job = data;
    diff_edit_model_params mp;
    diff_edit_model      *model = NULL;
    diff_edit_ctx        *ctx = NULL;
    diff_edit_status      st;

    diff_edit_model_params_default (&mp);
    mp.path = job->v.model_path[0] ? job->v.model_path : NULL;
    mp.log = job_log;
    st = diff_edit_model_load (&mp, &model);
    if (st != DIFF_EDIT_OK) {
        const char *msg = diff_edit_last_error (NULL);
        job->message = g_strdup_printf ("Could not load the model %s%s%s: %s",
                                        job->v.model_path[0] ? "\"" : "(embedded default",
                                        job->v.model_path[0] ? job->v.model_path : "",
                                        job->v.model_path[0] ? "\"" : ")",
                                        msg[0] ? msg : diff_edit_status_string (st));
        job->status = st;
        g_atomic_int_set (&job->done, 1);
        return NULL;
    }
    if (job->v.controlnet_path[0]) {
        st = diff_edit_controlnet_load (model, job->v.controlnet_path, &job->net);
        if (st != DIFF_EDIT_OK) {
            job->message = g_strdup_printf ("Could not load the ControlNet \"%s\": %s", job->v.controlnet_path,
                                            diff_edit_last_error (NULL));
            job->status = st;
            diff_edit_model_free (model);
            g_atomic_int_set (&job->done, 1);
            return NULL;
        }
    }
    st = diff_edit_ctx_create (model, &ctx);
    if (st != DIFF_EDIT_OK) {
        diff_edit_controlnet_free (job->net);
        job->net = NULL;
        diff_edit_model_free (model);
        job->message = g_strdup (diff_edit_last_error (NULL));
        job->status = st;
        g_atomic_int_set (&job->done, 1);
        return NULL;
    }
    if (!is_blank (job->v.lora_path)) {
        diff_edit_lora lora;
        diff_edit_lora_default (&lora);
        lora.path = job->v.lora_path;
        lora.scale = (float) job->v.lora_scale;
        st = diff_edit_model_set_loras (model, &lora, 1);
        if (st != DIFF_EDIT_OK) {
            const char *msg = diff_edit_last_error (NULL);
            job->message = g_strdup_printf ("Could not use the LoRA \"%s\": %s", job->v.lora_path,
                                            msg[0] ? msg : diff_edit_status_string (st));
            job->status = st;
            diff_edit_ctx_free (ctx);
            diff_edit_controlnet_free (job->net);
            job->net = NULL;
            diff_edit_model_free (model);
            g_atomic_int_set (&job->done, 1);
            return NULL;
        }
    }
    diff_edit_model_free (model); /* the context (and the ControlNet) keep the weights alive */
    g_mutex_lock (&job->lock);
    job->ctx = ctx;
    g_mutex_unlock (&job->lock);
    if (g_atomic_int_get (&job->cancel_requested))
        diff_edit_cancel (ctx);

    {
        int              bpp = job->format == DIFF_EDIT_RGBA8 ? 4 : 3;
        diff_edit_buffer in = { job->width, job->height, job->width * (uint32_t) bpp, job->format, job->pixels };
        diff_edit_buffer out = { job->width, job->height, job->width * (uint32_t) bpp, job->format, job->result };
        diff_edit_buffer mask = { job->width, job->height, job->width, DIFF_EDIT_GRAY8, job->mask };
        diff_edit_buffer mask_out = { job->width, job->height, job->width, DIFF_EDIT_GRAY8, job->mask_out };
        diff_edit_params p;
        int              mi = method_index (job->v.method);

        diff_edit_params_default (&p);
        p.method = method_values[mi < 0 ? 0 : mi];
        p.prompt = job->v.prompt;
        p.source_prompt = is_blank (job->v.source_prompt) ? NULL : job->v.source_prompt;
        p.strength = (float) job->v.strength;
        p.guidance = (float) job->v.guidance;
        p.steps = (uint32_t) job->v.steps;
        p.seed = job->seed;
        p.mask = job->mask ? &mask : NULL;
        p.mask_out = job->mask_out ? &mask_out : NULL;
        p.progress = job_progress;
        p.progress_user = job;
        if (job->net) {
            static diff_edit_control control; /* one job at a time */
            diff_edit_control_default (&control);
            control.net = job->net;
            control.preprocessor = job->v.control;
            control.scale = (float) job->v.control_scale;
            p.n_controls = 1;
            p.controls = &control;
        }
        st = diff_edit_image (ctx, &p, &in, &out);
        if (st != DIFF_EDIT_OK)
            job->message = g_strdup (diff_edit_last_error (ctx));
        else
            job->provenance = g_strdup (diff_edit_last_provenance (ctx)); /* valid until ctx is freed */
    }

    g_mutex_lock (&job->lock);
    job->ctx = NULL;
    g_mutex_unlock (&job->lock);
    diff_edit_ctx_free (ctx);
    diff_edit_controlnet_free (job->net);
    job->net = NULL;
    job->status = st;
    g_atomic_int_set (&job->done, 1);
    return NULL;
}

static void
job_cancel (EditJob *job)
{
    g_atomic_int_set (&job->cancel_requested, 1);
    g_mutex_lock (&job->lock);
    if (job->ctx)
        diff_edit_cancel (job->ctx);
    g_mutex_unlock (&job->lock);
}

static gdouble
job_fraction (EditJob *job)
{
    gint steps = g_atomic_int_get (&job->steps), frames = MAX (1, g_atomic_int_get (&job->frames));
    gint step = g_atomic_int_get (&job->step), frame = g_atomic_int_get (&job->frame);
    if (steps <= 0)
        return 0.0;
    return CLAMP (((gdouble) frame * steps + step) / ((gdouble) frames * steps), 0.0, 1.0);
}

/* Interactive progress window: Cancel stops the edit. */
static void
progress_response (GtkDialog *dialog, gint response, gpointer data)
{
    (void) dialog;
    if (response == GTK_RESPONSE_CANCEL || response == GTK_RESPONSE_DELETE_EVENT)
        job_cancel (data);
}

/* Runs the job on a worker thread; keeps GIMP's progress (and, interactive, a window with Cancel)
 * updated from this (the main) thread until it finishes. */
static void
run_job (EditJob *job, gboolean interactive)
{
    GThread   *thread;
    GtkWidget *win = NULL, *bar = NULL;
    gdouble    last = -1.0;

    g_mutex_init (&job->lock);
    gimp_progress_init ("Diffusion edit");
    if (interactive) {
        win = gimp_dialog_new ("Diffusion Edit — running", PLUG_IN_ROLE, NULL, 0, NULL, NULL,
                               "_Cancel", GTK_RESPONSE_CANCEL, NULL);
        bar = gtk_progress_bar_new ();
        gtk_progress_bar_set_text (GTK_PROGRESS_BAR (bar), "Loading the model...");
        gtk_container_set_border_width (GTK_CONTAINER (bar), 12);
        gtk_widget_set_size_request (bar, 320, -1);
        gtk_box_pack_start (GTK_BOX (gtk_dialog_get_content_area (GTK_DIALOG (win))), bar, TRUE, TRUE, 12);
        g_signal_connect (win, "response", G_CALLBACK (progress_response), job);
        gtk_widget_show_all (win);
    }
    thread = g_thread_new ("diffedit", job_thread, job);
    while (!g_atomic_int_get (&job->done)) {
        gdouble f = job_fraction (job);
        if (f != last) {
            gimp_progress_update (f);
            if (bar) {
                gchar *t = g_strdup_printf ("Step %d of %d", g_atomic_int_get (&job->step),
                                            g_atomic_int_get (&job->steps));
                gtk_progress_bar_set_fraction (GTK_PROGRESS_BAR (bar), f);
                gtk_progress_bar_set_text (GTK_PROGRESS_BAR (bar), t);
                g_free (t);
            }
            last = f;
        }
        if (interactive) {
            while (gtk_events_pending ())
                gtk_main_iteration_do (FALSE);
        }
        g_usleep (30000);
    }
    g_thread_join (thread);
    gimp_progress_update (1.0);
    if (win)
        gtk_widget_destroy (win);
    g_mutex_clear (&job->lock);
}

/* ------------------------------------------------------------------------------------------------
 * Dialog
 * ---------------------------------------------------------------------------------------------- */

static void
model_chosen (GtkFileChooserButton *button, gpointer entry)
{
    gchar *f = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (button));
    if (f)
        gtk_entry_set_text (GTK_ENTRY (entry), f);
    g_free (f);
}

/* Test hook (DIFFEDIT_GIMP_DIALOG_TEST): fill in the prompt and model, press OK. */
typedef struct { GtkWidget *dialog, *prompt, *model; gchar **parts; } DialogTest;

static gboolean
dialog_test_respond (gpointer data)
{
    DialogTest *t = data;
    gtk_entry_set_text (GTK_ENTRY (t->prompt), t->parts[0] ? t->parts[0] : "");
    if (t->parts[0] && t->parts[1])
        gtk_entry_set_text (GTK_ENTRY (t->model), t->parts[1]);
    gtk_dialog_response (GTK_DIALOG (t->dialog), GTK_RESPONSE_OK);
    return G_SOURCE_REMOVE;
}

static gboolean
edit_dialog (void)
{
    DialogTest test = { NULL, NULL, NULL, NULL };
    GtkWidget *dialog, *table, *prompt, *source, *method, *steps, *seed, *model, *browse, *hbox, *check;
    GtkWidget *lora, *lora_browse, *lora_box, *lora_scale;
    GtkWidget *cnet, *cbrowse, *control;
    GtkObject *adj;
    gboolean   ok;
    int        row = 0, mi;

    gimp_ui_init (PLUG_IN_BINARY, FALSE);
    dialog = gimp_dialog_new ("Diffusion Edit", PLUG_IN_ROLE, NULL, 0, gimp_standard_help_func, PLUG_IN_PROC,
                              "_Cancel", GTK_RESPONSE_CANCEL, "_OK", GTK_RESPONSE_OK, NULL);
    gtk_dialog_set_default_response (GTK_DIALOG (dialog), GTK_RESPONSE_OK);
    gimp_window_set_transient (GTK_WINDOW (dialog));

    table = gtk_table_new (14, 3, FALSE);
    gtk_table_set_col_spacings (GTK_TABLE (table), 6);
    gtk_table_set_row_spacings (GTK_TABLE (table), 6);
    gtk_container_set_border_width (GTK_CONTAINER (table), 12);
    gtk_box_pack_start (GTK_BOX (gtk_dialog_get_content_area (GTK_DIALOG (dialog))), table, TRUE, TRUE, 0);

    prompt = gtk_entry_new ();
    gtk_entry_set_text (GTK_ENTRY (prompt), vals.prompt);
    gtk_entry_set_activates_default (GTK_ENTRY (prompt), TRUE);
    gtk_widget_set_size_request (prompt, 360, -1);
    gtk_widget_set_tooltip_text (prompt, "What the result should show, e.g. \"a blue circle\" — or, for "
                                         "the instruct method, the instruction, e.g. \"make the circle blue\"");
    gimp_table_attach_aligned (GTK_TABLE (table), 0, row++, "_Prompt:", 0.0, 0.5, prompt, 2, FALSE);

    source = gtk_entry_new ();
    gtk_entry_set_text (GTK_ENTRY (source), vals.source_prompt);
    gtk_widget_set_tooltip_text (source, "What the layer shows now (needed by ddim and p2p; optional otherwise)");
    gimp_table_attach_aligned (GTK_TABLE (table), 0, row++, "_Source prompt:", 0.0, 0.5, source, 2, FALSE);

    method = gtk_combo_box_text_new ();
    for (int i = 0; i < N_METHODS; i++)
        gtk_combo_box_text_append_text (GTK_COMBO_BOX_TEXT (method), method_names[i]);
    mi = method_index (vals.method);
    gtk_combo_box_set_active (GTK_COMBO_BOX (method), mi < 0 ? 0 : mi);
    gtk_widget_set_tooltip_text (method, "auto: instruct for an instruct model, inpaint for an inpainting "
                                         "model (repaints the selection), p2p when a source prompt is "
                                         "given, else sdedit");
    gimp_table_attach_aligned (GTK_TABLE (table), 0, row++, "_Method:", 0.0, 0.5, method, 1, FALSE);

    adj = gimp_scale_entry_new (GTK_TABLE (table), 0, row++, "S_trength:", 200, 6, vals.strength,
                                0.0, 1.0, 0.05, 0.1, 2, TRUE, 0, 0,
                                "SDEdit noise level; 0 = the method's default", NULL);
    g_signal_connect (adj, "value-changed", G_CALLBACK (gimp_double_adjustment_update), &vals.strength);

    adj = gimp_scale_entry_new (GTK_TABLE (table), 0, row++, "_Guidance:", 200, 6, vals.guidance,
                                0.0, 30.0, 0.5, 1.0, 1, FALSE, 0.0, DIFF_EDIT_MAX_GUIDANCE,
                                "Classifier-free guidance; 0 = the method's default", NULL);
    g_signal_connect (adj, "value-changed", G_CALLBACK (gimp_double_adjustment_update), &vals.guidance);

    steps = gtk_spin_button_new_with_range (0, DIFF_EDIT_MAX_STEPS, 1);
    gtk_spin_button_set_value (GTK_SPIN_BUTTON (steps), vals.steps);
    gtk_widget_set_tooltip_text (steps, "Denoising steps; 0 = the method's default");
    gimp_table_attach_aligned (GTK_TABLE (table), 0, row++, "S_teps:", 0.0, 0.5, steps, 1, FALSE);

    seed = gtk_spin_button_new_with_range (-1, G_MAXINT32, 1);
    gtk_spin_button_set_value (GTK_SPIN_BUTTON (seed), vals.seed);
    gtk_widget_set_tooltip_text (seed, "Same seed and input give the same result; -1 = a random seed");
    gimp_table_attach_aligned (GTK_TABLE (table), 0, row++, "S_eed:", 0.0, 0.5, seed, 1, FALSE);

    hbox = gtk_hbox_new (FALSE, 6);
    model = gtk_entry_new ();
    gtk_entry_set_text (GTK_ENTRY (model), vals.model_path);
    gtk_widget_set_tooltip_text (model, "A diffusers folder or a single-file .safetensors checkpoint; "
                                        "empty = the embedded default model");
    browse = gtk_file_chooser_button_new ("Model folder", GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER);
    g_signal_connect (browse, "file-set", G_CALLBACK (model_chosen), model);
    gtk_box_pack_start (GTK_BOX (hbox), model, TRUE, TRUE, 0);
    gtk_box_pack_start (GTK_BOX (hbox), browse, FALSE, FALSE, 0);
    gimp_table_attach_aligned (GTK_TABLE (table), 0, row++, "Mo_del:", 0.0, 0.5, hbox, 2, FALSE);

    lora_box = gtk_hbox_new (FALSE, 6);
    lora = gtk_entry_new ();
    gtk_entry_set_text (GTK_ENTRY (lora), vals.lora_path);
    gtk_widget_set_tooltip_text (lora, "A LoRA .safetensors (diffusers/PEFT or kohya sd-scripts) fused into "
                                       "the model; empty = none");
    lora_browse = gtk_file_chooser_button_new ("LoRA file", GTK_FILE_CHOOSER_ACTION_OPEN);
    g_signal_connect (lora_browse, "file-set", G_CALLBACK (model_chosen), lora);
    gtk_box_pack_start (GTK_BOX (lora_box), lora, TRUE, TRUE, 0);
    gtk_box_pack_start (GTK_BOX (lora_box), lora_browse, FALSE, FALSE, 0);
    gimp_table_attach_aligned (GTK_TABLE (table), 0, row++, "_LoRA:", 0.0, 0.5, lora_box, 2, FALSE);

    lora_scale = gtk_spin_button_new_with_range (-10.0, 10.0, 0.05);
    gtk_spin_button_set_digits (GTK_SPIN_BUTTON (lora_scale), 2);
    gtk_spin_button_set_value (GTK_SPIN_BUTTON (lora_scale), vals.lora_scale);
    gtk_widget_set_tooltip_text (lora_scale, "The LoRA's strength: 1 = as trained, 0 = no effect");
    gimp_table_attach_aligned (GTK_TABLE (table), 0, row++, "LoRA st_rength:", 0.0, 0.5, lora_scale, 1, FALSE);

    hbox = gtk_hbox_new (FALSE, 6);
    cnet = gtk_entry_new ();
    gtk_entry_set_text (GTK_ENTRY (cnet), vals.controlnet_path);
    gtk_widget_set_tooltip_text (cnet, "Optional: a ControlNet made for the model (a diffusers ControlNetModel "
                                       "folder or a control_*.safetensors file) to keep the layer's structure; "
                                       "empty = none");
    cbrowse = gtk_file_chooser_button_new ("ControlNet file", GTK_FILE_CHOOSER_ACTION_OPEN);
    g_signal_connect (cbrowse, "file-set", G_CALLBACK (model_chosen), cnet);
    gtk_box_pack_start (GTK_BOX (hbox), cnet, TRUE, TRUE, 0);
    gtk_box_pack_start (GTK_BOX (hbox), cbrowse, FALSE, FALSE, 0);
    gimp_table_attach_aligned (GTK_TABLE (table), 0, row++, "_ControlNet:", 0.0, 0.5, hbox, 2, FALSE);

    control = gtk_combo_box_text_new ();
    for (int i = 0; i < N_CONTROLS; i++)
        gtk_combo_box_text_append_text (GTK_COMBO_BOX_TEXT (control), control_names[i]);
    mi = control_index (vals.control);
    gtk_combo_box_set_active (GTK_COMBO_BOX (control), mi < 0 ? 0 : mi);
    gtk_widget_set_tooltip_text (control, "The ControlNet's control map, made from the layer: canny (edges), "
                                          "tile (the layer itself), inpaint (the selection masked)");
    gimp_table_attach_aligned (GTK_TABLE (table), 0, row++, "Co_ntrol:", 0.0, 0.5, control, 1, FALSE);

    adj = gimp_scale_entry_new (GTK_TABLE (table), 0, row++, "Control sc_ale:", 200, 6, vals.control_scale,
                                0.0, 2.0, 0.05, 0.1, 2, FALSE, 0.0, 10.0,
                                "ControlNet conditioning scale: 1 = as trained, 0 = off", NULL);
    g_signal_connect (adj, "value-changed", G_CALLBACK (gimp_double_adjustment_update), &vals.control_scale);

    check = gtk_check_button_new_with_mnemonic ("Add the mask used as a _layer mask");
    gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (check), vals.add_layer_mask);
    gtk_table_attach (GTK_TABLE (table), check, 1, 3, row, row + 1, GTK_FILL, 0, 0, 0);
    row++;

    gtk_widget_show_all (dialog);
    if (g_getenv ("DIFFEDIT_GIMP_DIALOG_TEST")) {
        test.dialog = dialog;
        test.prompt = prompt;
        test.model = model;
        test.parts = g_strsplit (g_getenv ("DIFFEDIT_GIMP_DIALOG_TEST"), "|", 2);
        g_timeout_add (300, dialog_test_respond, &test);
    }
    ok = gimp_dialog_run (GIMP_DIALOG (dialog)) == GTK_RESPONSE_OK;
    g_strfreev (test.parts);
    if (ok) {
        gchar *m = gtk_combo_box_text_get_active_text (GTK_COMBO_BOX_TEXT (method));
        copy_str (vals.prompt, sizeof vals.prompt, gtk_entry_get_text (GTK_ENTRY (prompt)));
        copy_str (vals.source_prompt, sizeof vals.source_prompt, gtk_entry_get_text (GTK_ENTRY (source)));
        copy_str (vals.method, sizeof vals.method, m ? m : "auto");
        copy_str (vals.model_path, sizeof vals.model_path, gtk_entry_get_text (GTK_ENTRY (model)));
        copy_str (vals.lora_path, sizeof vals.lora_path, gtk_entry_get_text (GTK_ENTRY (lora)));
        vals.lora_scale = gtk_spin_button_get_value (GTK_SPIN_BUTTON (lora_scale));
        copy_str (vals.controlnet_path, sizeof vals.controlnet_path, gtk_entry_get_text (GTK_ENTRY (cnet)));
        {
            gchar *c = gtk_combo_box_text_get_active_text (GTK_COMBO_BOX_TEXT (control));
            copy_str (vals.control, sizeof vals.control, c ? c : "canny");
            g_free (c);
        }
        vals.steps = gtk_spin_button_get_value_as_int (GTK_SPIN_BUTTON (steps));
        vals.seed = gtk_spin_button_get_value_as_int (GTK_SPIN_BUTTON (seed));
        vals.add_layer_mask = gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (check));
        g_free (m);
    }
    gtk_widget_destroy (dialog);
    return ok;
}

/* ------------------------------------------------------------------------------------------------
 * The edit on a layer
 * ---------------------------------------------------------------------------------------------- */

/* Checks the arguments; returns NULL when fine, else a message (owned by the caller). */
static gchar *
check_input (gint32 image, gint32 drawable, const EditVals *v)
{
    if (!gimp_image_is_valid (image))
        return g_strdup ("Diffusion Edit: the image is not valid.");
    if (!gimp_item_is_valid (drawable) || !gimp_item_is_drawable (drawable))
        return g_strdup ("Diffusion Edit: the drawable is not valid.");
    if (!gimp_item_is_layer (drawable) || gimp_item_is_layer_mask (drawable))
        return g_strdup ("Diffusion Edit works on a layer: select a layer (not a channel or a layer mask) "
                         "in the Layers dialog and run it again.");
    if (gimp_item_is_group (drawable))
        return g_strdup ("Diffusion Edit works on a normal layer, not a layer group: select a layer inside "
                         "the group (or merge the group) and run it again.");
    if (gimp_layer_is_floating_sel (drawable))
        return g_strdup ("Diffusion Edit: anchor the floating selection (or make it a new layer) first.");
    if (gimp_image_base_type (image) == GIMP_INDEXED || gimp_drawable_is_indexed (drawable))
        return g_strdup ("Diffusion Edit works on RGB and grayscale images; this image is indexed. "
                         "Convert it with Image > Mode > RGB and run it again.");
    if (is_blank (v->prompt))
        return g_strdup ("Diffusion Edit: the prompt is empty. Describe the result you want "
                         "(or, for the instruct method, the instruction, e.g. \"make the circle blue\").");
    if (method_index (v->method) < 0)
        return g_strdup_printf ("Diffusion Edit: unknown method \"%s\"; use auto, sdedit, ddim, p2p, instruct or inpaint.",
                                v->method);
    if (v->steps < 0 || v->steps > (gint32) DIFF_EDIT_MAX_STEPS)
        return g_strdup_printf ("Diffusion Edit: steps (%d) must be 0 (default) to %u.", v->steps,
                                DIFF_EDIT_MAX_STEPS);
    if (!(v->strength >= 0.0 && v->strength <= 1.0))
        return g_strdup_printf ("Diffusion Edit: strength (%g) must be 0 (default) to 1.", v->strength);
    if (!(v->guidance >= 0.0 && v->guidance <= DIFF_EDIT_MAX_GUIDANCE))
        return g_strdup_printf ("Diffusion Edit: guidance (%g) must be 0 (default) to %g.", v->guidance,
                                (double) DIFF_EDIT_MAX_GUIDANCE);
    if (v->model_path[0] && !g_file_test (v->model_path, G_FILE_TEST_EXISTS))
        return g_strdup_printf ("Diffusion Edit: the model path \"%s\" does not exist. Give a diffusers "
                                "folder or a .safetensors file, or leave it empty for the embedded model.",
                                v->model_path);
    if (v->controlnet_path[0] && !g_file_test (v->controlnet_path, G_FILE_TEST_EXISTS))
        return g_strdup_printf ("Diffusion Edit: the ControlNet path \"%s\" does not exist. Give a diffusers "
                                "ControlNetModel folder or a control_*.safetensors file, or leave it empty.",
                                v->controlnet_path);
    if (v->controlnet_path[0] && control_index (v->control) < 0)
        return g_strdup_printf ("Diffusion Edit: unknown control \"%s\"; use canny, tile or inpaint.", v->control);
    if (v->controlnet_path[0] && !(v->control_scale >= 0.0 && v->control_scale <= 10.0))
        return g_strdup_printf ("Diffusion Edit: control scale (%g) must be 0 to 10.", v->control_scale);
    if (gimp_drawable_width (drawable) > (gint) DIFF_EDIT_MAX_DIMENSION ||
        gimp_drawable_height (drawable) > (gint) DIFF_EDIT_MAX_DIMENSION)
        return g_strdup_printf ("Diffusion Edit: the layer is larger than %u pixels on a side.",
                                DIFF_EDIT_MAX_DIMENSION);
    return NULL;
}

/* Performs the edit. Returns the new layer's ID (> 0), 0 when cancelled, -1 on error (*message set). */
static gint32
do_edit (gint32 image, gint32 drawable, const EditVals *v, gboolean interactive, gchar **message)
{
    gint       w = gimp_drawable_width (drawable), h = gimp_drawable_height (drawable);
    gint       ox = 0, oy = 0, sx = 0, sy = 0, sw = w, sh = h;
    gint       cx = 0, cy = 0, cw = w, ch = h; /* the region the library sees (drawable coordinates) */
    gboolean   alpha = gimp_drawable_has_alpha (drawable);
    gboolean   has_sel = !gimp_selection_is_empty (image);
    const Babl *u8 = babl_format (alpha ? "R'G'B'A u8" : "R'G'B' u8");
    int        bpp = alpha ? 4 : 3;
    EditJob    job;
    GeglBuffer *buf;
    gint32     layer;

    memset (&job, 0, sizeof job);
    job.v = *v;
    job.seed = v->seed >= 0 ? (guint64) v->seed : (guint64) g_random_int ();
    job.format = alpha ? DIFF_EDIT_RGBA8 : DIFF_EDIT_RGB8;
    {
        const char *c = g_getenv ("DIFFEDIT_GIMP_CANCEL_AT_STEP");
        job.cancel_at = c ? atoi (c) : 0;
    }

    if (!has_sel && v->controlnet_path[0] && !g_ascii_strcasecmp (v->control, "inpaint")) {
        *message = g_strdup ("Diffusion Edit: the inpaint control masks the selection; select the area to "
                             "repaint first.");
        return -1;
    }
    if (!has_sel && !g_ascii_strcasecmp (v->method, "inpaint")) {
        *message = g_strdup ("Diffusion Edit: inpaint repaints the selection; select the area to repaint "
                             "first.");
        return -1;
    }
    gimp_drawable_offsets (drawable, &ox, &oy);
    if (has_sel && !gimp_drawable_mask_intersect (drawable, &sx, &sy, &sw, &sh)) {
        *message = g_strdup ("Diffusion Edit: the selection does not touch this layer; select part of the "
                             "layer (or Select > None) and run it again.");
        return -1;
    }
    /* With a selection the library sees its bounding box plus half its size on each side (at least
     * 16 pixels) as context: a small selection in a large layer keeps its resolution. */
    if (has_sel) {
        gint mx = MAX (16, sw / 2), my = MAX (16, sh / 2);
        cx = MAX (0, sx - mx);
        cy = MAX (0, sy - my);
        cw = MIN (w, sx + sw + mx) - cx;
        ch = MIN (h, sy + sh + my) - cy;
    }
    job.width = (guint32) cw;
    job.height = (guint32) ch;

    job.pixels = g_try_malloc ((gsize) cw * ch * bpp);
    job.result = g_try_malloc ((gsize) cw * ch * bpp);
    if (has_sel)
        job.mask = g_try_malloc0 ((gsize) cw * ch);
    if (v->add_layer_mask)
        job.mask_out = g_try_malloc0 ((gsize) cw * ch);
    if (!job.pixels || !job.result || (has_sel && !job.mask) || (v->add_layer_mask && !job.mask_out)) {
        *message = g_strdup_printf ("Diffusion Edit: not enough memory for a %dx%d region.", cw, ch);
        layer = -1;
        goto out;
    }

    /* The layer's pixels (any precision and mode -> 8-bit non-linear RGB(A)). */
    buf = gimp_drawable_get_buffer (drawable);
    gegl_buffer_get (buf, GEGL_RECTANGLE (cx, cy, cw, ch), 1.0, u8, job.pixels, GEGL_AUTO_ROWSTRIDE,
                     GEGL_ABYSS_NONE);
    g_object_unref (buf);

    /* The selection over that region (image coordinates), 255 = edit. */
    if (has_sel) {
        gint32 sel = gimp_image_get_selection (image);
        GeglBuffer *sb = gimp_drawable_get_buffer (sel);
        gegl_buffer_get (sb, GEGL_RECTANGLE (ox + cx, oy + cy, cw, ch), 1.0, babl_format ("Y u8"), job.mask,
                         GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
        g_object_unref (sb);
    }

    run_job (&job, interactive);

    if (job.status == DIFF_EDIT_CANCELLED) {
        layer = 0;
        goto out;
    }
    if (job.status != DIFF_EDIT_OK) {
        *message = g_strdup_printf ("Diffusion Edit failed (%s): %s", diff_edit_status_string (job.status),
                                    job.message && job.message[0] ? job.message : "no details");
        layer = -1;
        goto out;
    }

    /* The new layer: an exact copy of the source, with the edited pixels written where the mask is
     * not 0 (so pixels outside the selection keep the source's bits in any precision). */
    gimp_image_undo_group_start (image);
    layer = gimp_layer_copy (drawable);
    if (layer <= 0) {
        gimp_image_undo_group_end (image);
        *message = g_strdup ("Diffusion Edit: could not copy the layer.");
        layer = -1;
        goto out;
    }
    {
        gchar *name = g_strdup_printf ("%.48s (diffusion edit)", v->prompt);
        gimp_item_set_name (layer, name);
        g_free (name);
    }
    gimp_image_insert_layer (image, layer, gimp_item_get_parent (drawable),
                             gimp_image_get_item_position (image, drawable));
    {
        GeglBuffer  *nb = gimp_drawable_get_buffer (layer);
        const Babl  *native = gegl_buffer_get_format (nb);
        int          nbpp = babl_format_get_bytes_per_pixel (native);
        const Babl  *fish = babl_fish (u8, native);
        guint8      *row_native = g_malloc ((gsize) sw * nbpp);
        guint8      *row_conv = g_malloc ((gsize) sw * nbpp);
        for (gint y = sy; y < sy + sh; y++) {
            const guint8 *res = job.result + ((gsize) (y - cy) * cw + (sx - cx)) * bpp;
            const guint8 *m = job.mask ? job.mask + (gsize) (y - cy) * cw + (sx - cx) : NULL;
            gegl_buffer_get (nb, GEGL_RECTANGLE (sx, y, sw, 1), 1.0, native, row_native, GEGL_AUTO_ROWSTRIDE,
                             GEGL_ABYSS_NONE);
            babl_process (fish, res, row_conv, sw);
            for (gint x = 0; x < sw; x++)
                if (!m || m[x])
                    memcpy (row_native + (gsize) x * nbpp, row_conv + (gsize) x * nbpp, (size_t) nbpp);
            gegl_buffer_set (nb, GEGL_RECTANGLE (sx, y, sw, 1), 0, native, row_native, GEGL_AUTO_ROWSTRIDE);
        }
        g_free (row_native);
        g_free (row_conv);
        gegl_buffer_flush (nb);
        g_object_unref (nb);
        gimp_drawable_update (layer, sx, sy, sw, sh);
    }
    if (v->add_layer_mask && job.mask_out) {
        if (gimp_layer_get_mask (layer) > 0) {
            g_printerr ("Diffusion Edit: the layer already has a layer mask; the mask used was not added.\n");
        } else {
            /* black (nothing edited) outside the region the library saw */
            gint32 lm = gimp_layer_create_mask (layer, GIMP_ADD_MASK_BLACK);
            if (lm > 0 && gimp_layer_add_mask (layer, lm)) {
                GeglBuffer *mb = gimp_drawable_get_buffer (lm);
                gegl_buffer_set (mb, GEGL_RECTANGLE (cx, cy, cw, ch), 0, babl_format ("Y u8"), job.mask_out,
                                 GEGL_AUTO_ROWSTRIDE);
                gegl_buffer_flush (mb);
                g_object_unref (mb);
                gimp_drawable_update (lm, 0, 0, w, h);
            }
        }
    }
    attach_provenance (image, job.provenance);
    gimp_image_set_active_layer (image, layer);
    gimp_image_undo_group_end (image);

out:
    g_free (job.provenance);
    g_free (job.pixels);
    g_free (job.result);
    g_free (job.mask);
    g_free (job.mask_out);
    g_free (job.message);
    return layer;
}

/* ------------------------------------------------------------------------------------------------
 * Entry point
 * ---------------------------------------------------------------------------------------------- */

static void
run (const gchar *name, gint nparams, const GimpParam *param, gint *nreturn_vals, GimpParam **return_vals)
{
    static GimpParam values[2];
    GimpRunMode      mode = nparams > 0 ? (GimpRunMode) param[0].data.d_int32 : GIMP_RUN_NONINTERACTIVE;
    gint32           image = nparams > 1 ? param[1].data.d_image : -1;
    gint32           drawable = nparams > 2 ? param[2].data.d_drawable : -1;
    gboolean         interactive = mode == GIMP_RUN_INTERACTIVE;
    gboolean         ext = g_strcmp0 (name, PLUG_IN_PROC_EXT) == 0;
    gint             want = ext ? N_ARGS_EXT : 11;
    gchar           *message = NULL;
    GimpPDBStatusType status = GIMP_PDB_SUCCESS;
    gint32           layer = -1;

    *nreturn_vals = 1;
    *return_vals = values;
    values[0].type = GIMP_PDB_STATUS;
    values[1].type = GIMP_PDB_LAYER;
    values[1].data.d_layer = -1;

    gegl_init (NULL, NULL);

    switch (mode) {
    case GIMP_RUN_INTERACTIVE:
        gimp_get_data (PLUG_IN_PROC, &vals);
        vals.prompt[sizeof vals.prompt - 1] = vals.source_prompt[sizeof vals.source_prompt - 1] = '\0';
        vals.method[sizeof vals.method - 1] = vals.model_path[sizeof vals.model_path - 1] = '\0';
        vals.lora_path[sizeof vals.lora_path - 1] = '\0';
        vals.controlnet_path[sizeof vals.controlnet_path - 1] = vals.control[sizeof vals.control - 1] = '\0';
        if (!edit_dialog ()) {
            values[0].data.d_status = GIMP_PDB_CANCEL;
            return;
        }
        break;
    case GIMP_RUN_NONINTERACTIVE:
        if (nparams != want) {
            status = GIMP_PDB_CALLING_ERROR;
            message = g_strdup_printf ("%s takes %d arguments (run-mode image drawable prompt "
                                       "source-prompt method strength guidance steps seed model-path%s), got %d",
                                       ext ? PLUG_IN_PROC_EXT : PLUG_IN_PROC, want,
                                       ext ? " lora-path lora-scale controlnet-path control control-scale" : "", nparams);
            break;
        }
        copy_str (vals.prompt, sizeof vals.prompt, param[3].data.d_string);
        copy_str (vals.source_prompt, sizeof vals.source_prompt, param[4].data.d_string);
        copy_str (vals.method, sizeof vals.method, param[5].data.d_string);
        if (param[5].data.d_string && strlen (param[5].data.d_string) >= sizeof vals.method)
            copy_str (vals.method, sizeof vals.method, "(too long)");
        vals.strength = param[6].data.d_float;
        vals.guidance = param[7].data.d_float;
        vals.steps = param[8].data.d_int32;
        vals.seed = param[9].data.d_int32;
        copy_str (vals.model_path, sizeof vals.model_path, param[10].data.d_string);
        copy_str (vals.lora_path, sizeof vals.lora_path, ext ? param[11].data.d_string : "");
        vals.lora_scale = ext ? param[12].data.d_float : 1.0;
        copy_str (vals.controlnet_path, sizeof vals.controlnet_path, ext ? param[13].data.d_string : "");
        copy_str (vals.control, sizeof vals.control, ext ? param[14].data.d_string : "canny");
        if (ext && param[14].data.d_string && strlen (param[14].data.d_string) >= sizeof vals.control)
            copy_str (vals.control, sizeof vals.control, "(too long)");
        vals.control_scale = ext ? param[15].data.d_float : 1.0;
        vals.add_layer_mask = g_strcmp0 (g_getenv ("DIFFEDIT_GIMP_ADD_LAYER_MASK"), "1") == 0;
        break;
    case GIMP_RUN_WITH_LAST_VALS:
        gimp_get_data (PLUG_IN_PROC, &vals);
        vals.prompt[sizeof vals.prompt - 1] = vals.source_prompt[sizeof vals.source_prompt - 1] = '\0';
        vals.method[sizeof vals.method - 1] = vals.model_path[sizeof vals.model_path - 1] = '\0';
        vals.lora_path[sizeof vals.lora_path - 1] = '\0';
        vals.controlnet_path[sizeof vals.controlnet_path - 1] = vals.control[sizeof vals.control - 1] = '\0';
        break;
    default:
        status = GIMP_PDB_CALLING_ERROR;
        message = g_strdup ("plug-in-diffedit: unknown run mode");
        break;
    }

    if (status == GIMP_PDB_SUCCESS) {
        message = check_input (image, drawable, &vals);
        if (message)
            status = (mode == GIMP_RUN_NONINTERACTIVE && method_index (vals.method) < 0)
                         ? GIMP_PDB_CALLING_ERROR : GIMP_PDB_EXECUTION_ERROR;
    }
    if (status == GIMP_PDB_SUCCESS) {
        if (interactive)
            gimp_set_data (PLUG_IN_PROC, &vals, sizeof vals);
        layer = do_edit (image, drawable, &vals, interactive, &message);
        if (layer > 0) {
            if (mode != GIMP_RUN_NONINTERACTIVE)
                gimp_displays_flush ();
        } else if (layer == 0) {
            status = GIMP_PDB_CANCEL;
        } else {
            status = GIMP_PDB_EXECUTION_ERROR;
        }
    }

    values[0].data.d_status = status;
    if (status == GIMP_PDB_SUCCESS) {
        *nreturn_vals = 2;
        values[1].type = GIMP_PDB_LAYER;
        values[1].data.d_layer = layer;
    } else if (message && mode != GIMP_RUN_NONINTERACTIVE) {
        /* Interactive / last values: the user sees the message in GIMP's own message style. */
        gimp_message (message);
    } else if (message) {
        /* Non-interactive: the message travels with the error status (Script-Fu prints it). */
        static gchar *last_message = NULL; /* must outlive run(): libgimp sends it after we return */
        g_free (last_message);
        last_message = message;
        message = NULL;
        *nreturn_vals = 2;
        values[1].type = GIMP_PDB_STRING;
        values[1].data.d_string = last_message;
    }
    g_free (message);
}
