//! BatDetect2's processing parameters: what the checkpoint's `params` dictionary says, with
//! BatDetect2 1.3.1's documented defaults for anything it does not.
//!
//! In: the `params` object of the checkpoint's pickle (when it can be read). Out: [`Params`],
//! the numbers every stage uses: sample rate, STFT window and overlap, frequency crop,
//! spectrogram height and resize factor, the width divisor, the non-maximum suppression
//! kernel, the top-k rate, the detection floor and the class names.

use candle_core::pickle::Object;

/// The settings of one BatDetect2 model.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Every recording is resampled to this rate, Hz (256 000).
    pub target_samplerate: u32,
    /// STFT window, seconds (0.002: 512 samples at 256 kHz).
    pub fft_win_length: f64,
    /// Fraction of a window the next one shares (0.75).
    pub fft_overlap: f64,
    /// Lowest frequency kept, Hz (10 000).
    pub min_freq: f64,
    /// Highest frequency kept, Hz (120 000).
    pub max_freq: f64,
    /// The spectrogram is resized by this in both directions (0.5).
    pub resize_factor: f64,
    /// Spectrogram height before resizing, bins (256).
    pub spec_height: usize,
    /// The resized width is padded to a multiple of this (32).
    pub spec_divide_factor: usize,
    /// The network's input height (128).
    pub ip_height: usize,
    /// The network's filter count (128).
    pub num_filters: usize,
    /// Detection floor: peaks scoring at or below it are dropped (0.01).
    pub detection_threshold: f64,
    /// Non-maximum suppression window, pixels (9).
    pub nms_kernel_size: usize,
    /// At most this many peaks per second are kept (200).
    pub nms_top_k_per_sec: f64,
    /// The species, in the order of the network's class outputs.
    pub class_names: Vec<String>,
    /// The architecture (`Net2DFast`, the only one implemented).
    pub model_name: String,
    /// The spectrogram's scaling (`pcen`, the only one implemented).
    pub spec_scale: String,
    /// Whether each band's mean is removed (true, the only setting implemented).
    pub denoise_spec_avg: bool,
    /// Whether the spectrogram is scaled to a maximum of 1 (false, the only setting
    /// implemented).
    pub max_scale_spec: bool,
}

/// The species of BatDetect2's UK model, in output order: the fallback when the checkpoint's
/// `params` cannot be read.
const UK_CLASSES: [&str; 17] = [
    "Barbastellus barbastellus",
    "Eptesicus serotinus",
    "Myotis alcathoe",
    "Myotis bechsteinii",
    "Myotis brandtii",
    "Myotis daubentonii",
    "Myotis mystacinus",
    "Myotis nattereri",
    "Nyctalus leisleri",
    "Nyctalus noctula",
    "Pipistrellus nathusii",
    "Pipistrellus pipistrellus",
    "Pipistrellus pygmaeus",
    "Plecotus auritus",
    "Plecotus austriacus",
    "Rhinolophus ferrumequinum",
    "Rhinolophus hipposideros",
];

impl Default for Params {
    fn default() -> Params {
        Params {
            target_samplerate: 256_000,
            fft_win_length: 512.0 / 256_000.0,
            fft_overlap: 0.75,
            min_freq: 10_000.0,
            max_freq: 120_000.0,
            resize_factor: 0.5,
            spec_height: 256,
            spec_divide_factor: 32,
            ip_height: 128,
            num_filters: 128,
            detection_threshold: 0.01,
            nms_kernel_size: 9,
            nms_top_k_per_sec: 200.0,
            class_names: UK_CLASSES.iter().map(|s| (*s).to_owned()).collect(),
            model_name: "Net2DFast".into(),
            spec_scale: "pcen".into(),
            denoise_spec_avg: true,
            max_scale_spec: false,
        }
    }
}

impl Params {
    /// The parameters in the checkpoint's `params` dictionary, over the defaults; the
    /// names of the entries that could not be used are returned beside them.
    pub fn from_pickle(params: Object) -> (Params, Vec<String>) {
        let mut out = Params::default();
        let mut unused = Vec::new();
        let Object::Dict(entries) = params else {
            return (out, vec!["params".into()]);
        };
        for (key, value) in entries {
            let Object::Unicode(key) = key else { continue };
            let ok = match key.as_str() {
                "target_samp_rate" => set_int(&value, |v| out.target_samplerate = v as u32),
                "fft_win_length" => set_float(&value, |v| out.fft_win_length = v),
                "fft_overlap" => set_float(&value, |v| out.fft_overlap = v),
                "min_freq" => set_float(&value, |v| out.min_freq = v),
                "max_freq" => set_float(&value, |v| out.max_freq = v),
                "resize_factor" => set_float(&value, |v| out.resize_factor = v),
                "spec_height" => set_int(&value, |v| out.spec_height = v as usize),
                "spec_divide_factor" => set_int(&value, |v| out.spec_divide_factor = v as usize),
                "ip_height" => set_int(&value, |v| out.ip_height = v as usize),
                "num_filters" => set_int(&value, |v| out.num_filters = v as usize),
                "detection_threshold" => set_float(&value, |v| out.detection_threshold = v),
                "nms_kernel_size" => set_int(&value, |v| out.nms_kernel_size = v as usize),
                "nms_top_k_per_sec" => set_float(&value, |v| out.nms_top_k_per_sec = v),
                "model_name" => set_string(&value, |v| out.model_name = v),
                "spec_scale" => set_string(&value, |v| out.spec_scale = v),
                "denoise_spec_avg" => set_bool(&value, |v| out.denoise_spec_avg = v),
                "max_scale_spec" => set_bool(&value, |v| out.max_scale_spec = v),
                "class_names" => match &value {
                    Object::List(items) => {
                        let names: Vec<String> = items
                            .iter()
                            .filter_map(|i| match i {
                                Object::Unicode(s) => Some(s.clone()),
                                _ => None,
                            })
                            .collect();
                        let whole = names.len() == items.len() && !names.is_empty();
                        if whole {
                            out.class_names = names;
                        }
                        whole
                    }
                    _ => false,
                },
                _ => true,
            };
            if !ok {
                unused.push(key);
            }
        }
        (out, unused)
    }

    /// What in these parameters acoupi's implementation does not do, if anything.
    pub fn unsupported(&self) -> Option<String> {
        if self.model_name != "Net2DFast" {
            return Some(format!(
                "model `{}` (only `Net2DFast` is implemented)",
                self.model_name
            ));
        }
        if self.spec_scale != "pcen" {
            return Some(format!(
                "spectrogram scaling `{}` (only `pcen` is implemented)",
                self.spec_scale
            ));
        }
        if !self.denoise_spec_avg || self.max_scale_spec {
            return Some(
                "a spectrogram without mean removal, or scaled to a maximum of 1 (not implemented)"
                    .into(),
            );
        }
        if self.n_fft() < 2 || self.hop() == 0 || self.resize_factor <= 0.0 {
            return Some("a degenerate STFT window, overlap or resize factor".into());
        }
        None
    }

    /// STFT window length, samples (512).
    pub fn n_fft(&self) -> usize {
        (self.fft_win_length * f64::from(self.target_samplerate)) as usize
    }

    /// Samples two windows share (384).
    pub fn n_overlap(&self) -> usize {
        (self.fft_overlap * self.n_fft() as f64) as usize
    }

    /// Samples between windows (128).
    pub fn hop(&self) -> usize {
        self.n_fft() - self.n_overlap()
    }

    /// Seconds from the start of the audio at spectrogram column `x` (before resizing).
    pub fn x_to_time(&self, x: f64) -> f64 {
        (x * self.hop() as f64 + self.n_overlap() as f64) / f64::from(self.target_samplerate)
    }
}

/// Applies an integer entry (a float with no fraction is taken too).
fn set_int(value: &Object, set: impl FnOnce(i64)) -> bool {
    match value {
        Object::Int(i) if *i >= 0 => set(i64::from(*i)),
        Object::Long(i) if *i >= 0 => set(*i),
        Object::Float(f) if f.fract() == 0.0 && *f >= 0.0 => set(*f as i64),
        _ => return false,
    }
    true
}

/// Applies a string entry.
fn set_string(value: &Object, set: impl FnOnce(String)) -> bool {
    match value {
        Object::Unicode(s) => set(s.clone()),
        _ => return false,
    }
    true
}

/// Applies a boolean entry.
fn set_bool(value: &Object, set: impl FnOnce(bool)) -> bool {
    match value {
        Object::Bool(b) => set(*b),
        _ => return false,
    }
    true
}

/// Applies a number entry.
fn set_float(value: &Object, set: impl FnOnce(f64)) -> bool {
    match value {
        Object::Int(i) => set(f64::from(*i)),
        Object::Long(i) => set(*i as f64),
        Object::Float(f) if f.is_finite() => set(*f),
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: Object) -> (Object, Object) {
        (Object::Unicode(key.into()), value)
    }

    #[test]
    fn checkpoint_entries_override_the_defaults_and_odd_ones_are_named() {
        let (p, unused) = Params::from_pickle(Object::Dict(vec![
            entry("nms_top_k_per_sec", Object::Int(100)),
            entry("fft_overlap", Object::Float(0.5)),
            entry(
                "class_names",
                Object::List(vec![Object::Unicode("Bat".into())]),
            ),
            entry("max_freq", Object::Unicode("lots".into())),
            entry("lr", Object::Float(0.001)),
        ]));
        assert_eq!(p.nms_top_k_per_sec, 100.0);
        assert_eq!(p.fft_overlap, 0.5);
        assert_eq!(p.hop(), 256);
        assert_eq!(p.class_names, ["Bat"]);
        assert_eq!(p.max_freq, 120_000.0);
        assert_eq!(unused, ["max_freq"]);
    }

    #[test]
    fn only_what_is_implemented_is_accepted() {
        assert_eq!(Params::default().unsupported(), None);
        let p = Params {
            model_name: "Net2DFastNoAttn".into(),
            ..Params::default()
        };
        assert!(
            p.unsupported()
                .expect("refused")
                .contains("Net2DFastNoAttn")
        );
        let p = Params {
            spec_scale: "log".into(),
            ..Params::default()
        };
        assert!(p.unsupported().expect("refused").contains("`log`"));
    }

    #[test]
    fn the_window_is_512_samples_every_128() {
        let p = Params::default();
        assert_eq!((p.n_fft(), p.n_overlap(), p.hop()), (512, 384, 128));
        assert_eq!(p.x_to_time(0.0), 384.0 / 256_000.0);
    }
}
