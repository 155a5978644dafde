//! The one error crossing the boundary: a kind to switch on, and the message in English and
//! Simplified Chinese for the screen. Nothing panics across the boundary.

use doorstep_client::ClientError;
use doorstep_core::CoreError;
use doorstep_core::sync::message::ErrorCode;

/// What kind of failure, for the app to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ErrorKind {
    /// The input was refused (empty name, text too long, bad id…): fix it and retry.
    InvalidInput,
    /// No such household, request, resident or document on this device.
    NotFound,
    /// The request's status does not allow that action.
    InvalidTransition,
    /// There is no conflict to resolve there.
    NoConflict,
    /// The encryption key does not open the replica file; nothing was changed.
    WrongKey,
    /// Stored data is damaged (reported per document; the rest stays usable).
    Damaged,
    /// The device is not enrolled yet.
    NotEnrolled,
    /// The server could not be reached or the connection broke; nothing was lost, retry later.
    Network,
    /// The server's TLS certificate is not trusted (not issued by a trusted CA, for another
    /// name, expired…); nothing was sent and nothing was lost. Retrying will not help: enrol
    /// with the county's CA certificate, or have the county fix the server's certificate.
    UntrustedCertificate,
    /// The enrolment code is not valid (unknown, used or expired).
    InvalidCode,
    /// The device was revoked; its data has been deleted.
    Revoked,
    /// The server refused the request (see the message); nothing of it was stored.
    Refused,
    /// The sync was cancelled; nothing was lost.
    Cancelled,
    /// The device's storage failed otherwise (a read-only file system…).
    Storage,
    /// The replica file is already open, in this app or in another process: share the one
    /// open `Replica` (a second handle would damage the file).
    AlreadyOpen,
    /// The replica file itself is damaged (the key is right, or the damage hides it): run
    /// `check_integrity()`, then recover by enrolling again and downloading (§4.1).
    DamagedFile,
    /// The file is not a Doorstep replica at all (a plain database, another file): most likely
    /// a wrong path. Nothing was changed.
    NotAReplica,
    /// The phone's storage is full; nothing of the failed change was saved. Free space, retry.
    DiskFull,
    /// Local changes have not reached the server yet, so the call (sign-out, enrolling with
    /// another server) would lose them: sync first, or force it.
    UnsyncedWork,
}

/// A failed call.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum DoorstepError {
    /// The call failed.
    #[error("{message_en}")]
    Failed {
        /// What kind of failure.
        kind: ErrorKind,
        /// English message (not `message`: that name clashes with Kotlin's `Throwable.message`).
        message_en: String,
        /// Simplified Chinese message.
        message_zh: String,
    },
}

impl DoorstepError {
    fn new(kind: ErrorKind, message: impl Into<String>, message_zh: impl Into<String>) -> Self {
        DoorstepError::Failed { kind, message_en: message.into(), message_zh: message_zh.into() }
    }

    /// An input error.
    pub fn invalid(message: impl Into<String>, message_zh: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message, message_zh)
    }

    /// The kind (for tests and logs).
    pub fn kind(&self) -> ErrorKind {
        match self {
            DoorstepError::Failed { kind, .. } => *kind,
        }
    }
}

fn field_zh(field: &str) -> &str {
    match field {
        "name" => "姓名",
        "community" => "社区",
        "room" => "门牌号",
        "building" => "楼栋",
        "unit" => "单元",
        "notes" => "备注",
        "note" => "说明",
        "description" => "诉求内容",
        "phone" => "电话",
        "birth_year" => "出生年份",
        "need" => "需求",
        "needs" => "需求",
        "grid" => "网格",
        "department" => "部门",
        "key" => "密钥",
        "media_type" => "文件类型",
        "attachment" => "附件",
        "attachments" => "附件",
        "location" => "位置",
        "visit" => "走访记录",
        "event" => "诉求进展",
        "path" => "文件位置",
        "enrolment" => "注册信息",
        "replica file" => "本机数据文件",
        // Never an internal English name on the screen.
        _ => "输入内容",
    }
}

/// Whether a text holds a word in Latin letters (an internal English word, not for the screen).
fn has_ascii_word(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphabetic()).any(|w| w.len() >= 3)
}

impl From<CoreError> for DoorstepError {
    fn from(e: CoreError) -> Self {
        let en = e.to_string();
        match e {
            CoreError::InvalidId { .. } => Self::invalid(en, "编号格式不正确"),
            CoreError::EmptyText { field } => Self::invalid(en, format!("{}不能为空", field_zh(field))),
            CoreError::TextTooLong { field, max } => {
                Self::invalid(en, format!("{}不能超过 {max} 个字", field_zh(field)))
            }
            CoreError::InvalidValue { field: "key", .. } => {
                Self::invalid(en, format!("密钥必须是 {} 字节的随机数据", doorstep_core::store::KEY_BYTES))
            }
            // The reason is shown only when it is written in Chinese.
            CoreError::InvalidValue { field, reason } if !has_ascii_word(&reason) => {
                Self::invalid(en, format!("{}无效：{reason}", field_zh(field)))
            }
            CoreError::InvalidValue { field, .. } => Self::invalid(en, format!("{}无效", field_zh(field))),
            CoreError::UnknownCategory(c) => Self::invalid(en, format!("没有这个诉求类别：{c}")),
            CoreError::UnknownHousehold(_) => Self::new(ErrorKind::NotFound, en, "找不到该住户"),
            CoreError::UnknownRequest(_) => Self::new(ErrorKind::NotFound, en, "找不到该诉求"),
            CoreError::UnknownResident(_) => Self::new(ErrorKind::NotFound, en, "找不到该居民"),
            CoreError::UnknownDocument(_) => Self::new(ErrorKind::NotFound, en, "本机没有该记录"),
            CoreError::InvalidTransition { from, .. } => Self::new(
                ErrorKind::InvalidTransition,
                en,
                format!("诉求当前为「{}」，不能执行此操作", from.label_zh()),
            ),
            CoreError::NotPermitted { role, .. } => {
                Self::new(ErrorKind::InvalidTransition, en, format!("{}无权执行此操作", role.label_zh()))
            }
            CoreError::NoSuchConflict(_) => Self::new(ErrorKind::NoConflict, en, "这里没有需要处理的冲突"),
            CoreError::CorruptDocument { .. } => {
                Self::new(ErrorKind::Damaged, en, "该记录的数据已损坏，其他记录不受影响")
            }
            CoreError::WrongKey => Self::new(ErrorKind::WrongKey, en, "密钥无法打开本机数据，数据未被改动"),
            CoreError::DamagedFile { .. } => Self::new(
                ErrorKind::DamagedFile,
                en,
                "本机数据文件已损坏。请先导出未同步的记录，再重新注册本机，从服务器重新下载数据",
            ),
            CoreError::NotAReplica { .. } => {
                Self::new(ErrorKind::NotAReplica, en, "该文件不是本应用的数据文件，请检查文件位置")
            }
            CoreError::AlreadyOpen { .. } => Self::new(
                ErrorKind::AlreadyOpen,
                en,
                "本机数据文件已经打开，不能同时打开两次；请使用已打开的那一个",
            ),
            CoreError::UnsyncedWork { changes } => Self::new(
                ErrorKind::UnsyncedWork,
                en,
                format!("本机还有 {changes} 条修改没有同步到服务器，请先同步"),
            ),
            CoreError::File(_) => Self::new(ErrorKind::Storage, en, "本机存储出错，无法读写数据文件"),
            CoreError::EncryptionUnavailable => Self::new(ErrorKind::Storage, en, "此版本不支持数据加密"),
            CoreError::UnsyncedChanges(_) => {
                Self::new(ErrorKind::Refused, en, "该记录还有未同步的修改，暂不能删除")
            }
            CoreError::NoMember => Self::new(ErrorKind::NotEnrolled, en, "本机尚未注册，请先输入注册码"),
            CoreError::AttachmentTooLarge { max, .. } => {
                Self::invalid(en, format!("附件过大，每个附件最多 {} MB", max / (1024 * 1024)))
            }
            CoreError::UnknownAttachment(_) => {
                Self::new(ErrorKind::NotFound, en, "本机还没有该附件（照片待下载）")
            }
            CoreError::AttachmentMismatch(_) => {
                Self::new(ErrorKind::Damaged, en, "收到的附件数据校验不符，已丢弃，将重新下载")
            }
            CoreError::InvalidTaxonomy(_) => Self::new(ErrorKind::Damaged, en, "诉求分类配置无效"),
            CoreError::Rejected { code, message, .. } => from_code(code, message),
            CoreError::Protocol(_) => {
                Self::new(ErrorKind::Network, en, "服务器返回了无法识别的数据，请稍后重试")
            }
            CoreError::StorageFull => Self::new(
                ErrorKind::DiskFull,
                en,
                "手机存储空间已满，本次修改未保存，已保存的记录不受影响；请清理空间后重试",
            ),
            CoreError::StorageReadOnly => {
                Self::new(ErrorKind::Storage, en, "本机存储为只读，本次修改未保存，已保存的记录仍可查看")
            }
            CoreError::Storage(_) => {
                Self::new(ErrorKind::Storage, en, "本机存储出错（空间不足或文件被占用）")
            }
            CoreError::Automerge(_) => Self::new(ErrorKind::Damaged, en, "记录数据无法处理"),
            _ => Self::new(ErrorKind::Storage, en, "操作失败"),
        }
    }
}

fn from_code(code: ErrorCode, message: String) -> DoorstepError {
    let en = format!("the server refused the request ({code}): {message}");
    match code {
        ErrorCode::DeviceRevoked => {
            DoorstepError::new(ErrorKind::Revoked, en, "本设备已被停用，本机数据已清除")
        }
        ErrorCode::Unauthorized => DoorstepError::new(ErrorKind::InvalidCode, en, "注册码或设备凭证无效"),
        ErrorCode::Internal | ErrorCode::RateLimited => {
            DoorstepError::new(ErrorKind::Network, en, "服务器暂时无法处理，请稍后重试")
        }
        _ => DoorstepError::new(ErrorKind::Refused, en, "服务器拒绝了本次请求，数据仍保留在本机"),
    }
}

impl From<ClientError> for DoorstepError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Network(m) => DoorstepError::new(
                ErrorKind::Network,
                format!("network error: {m}"),
                "网络不通，数据已保存在本机，稍后再同步",
            ),
            ClientError::UntrustedCertificate(m) => DoorstepError::new(
                ErrorKind::UntrustedCertificate,
                format!("the server's certificate is not trusted: {m}"),
                "服务器证书不受信任，未建立连接，数据仍保留在本机。请向管理员索取本县（区）的 CA 证书后重新注册",
            ),
            ClientError::InvalidCaCertificate(m) => DoorstepError::invalid(
                format!("the CA certificate to trust is not valid: {m}"),
                "CA 证书格式不正确，请使用管理员提供的 PEM 证书文本",
            ),
            ClientError::TlsSetup(m) => DoorstepError::new(
                ErrorKind::Network,
                format!("TLS could not be set up: {m}"),
                "本机无法建立安全连接，数据已保存在本机，稍后再同步",
            ),
            ClientError::Refused { code, message, .. } => from_code(code, message),
            ClientError::Unexpected(m) => DoorstepError::new(
                ErrorKind::Network,
                format!("unexpected answer from the server: {m}"),
                "服务器地址可能有误，收到了无法识别的回复",
            ),
            ClientError::NotEnrolled => DoorstepError::new(
                ErrorKind::NotEnrolled,
                "this device is not enrolled",
                "本机尚未注册，请先输入注册码",
            ),
            ClientError::Cancelled => {
                DoorstepError::new(ErrorKind::Cancelled, "the sync was cancelled", "同步已取消，数据未丢失")
            }
            ClientError::AttachmentRefused { status, code, message } => {
                // The server's messages are "中文 / English".
                let (zh, en) = message.split_once(" / ").unwrap_or((message.as_str(), message.as_str()));
                let kind = match code.as_str() {
                    "out_of_scope" | "too_large" | "chunk_too_large" => ErrorKind::Refused,
                    "not_uploaded" | "no_thumbnail" => ErrorKind::NotFound,
                    _ if status >= 500 => ErrorKind::Network,
                    _ => ErrorKind::Refused,
                };
                DoorstepError::new(kind, format!("attachment transfer refused ({code}): {en}"), zh.to_owned())
            }
            ClientError::Core(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_of_the_store_has_its_kind_and_a_chinese_message_without_internal_words() {
        let cases = [
            (CoreError::WrongKey, ErrorKind::WrongKey),
            (CoreError::DamagedFile { reason: "3 of 9 pages do not decrypt".into() }, ErrorKind::DamagedFile),
            (CoreError::NotAReplica { reason: "a plain SQLite database".into() }, ErrorKind::NotAReplica),
            (CoreError::AlreadyOpen { path: "/data/doorstep.db".into() }, ErrorKind::AlreadyOpen),
            (CoreError::UnsyncedWork { changes: 3 }, ErrorKind::UnsyncedWork),
            (CoreError::StorageFull, ErrorKind::DiskFull),
            (CoreError::File(std::io::Error::other("lock file")), ErrorKind::Storage),
            (
                CoreError::InvalidValue { field: "key", reason: "must be 32 bytes".into() },
                ErrorKind::InvalidInput,
            ),
            (
                CoreError::InvalidValue { field: "internal_field", reason: "bad".into() },
                ErrorKind::InvalidInput,
            ),
            (CoreError::InvalidId { what: "household id", value: "x".into() }, ErrorKind::InvalidInput),
            (
                CoreError::Rejected { code: ErrorCode::MalformedFrame, message: "actor".into(), doc: None },
                ErrorKind::Refused,
            ),
        ];
        for (error, kind) in cases {
            let shown = format!("{error}");
            let DoorstepError::Failed { kind: got, message_en, message_zh } = DoorstepError::from(error);
            assert_eq!(got, kind, "{shown}");
            assert!(!message_en.is_empty());
            assert!(!has_ascii_word(&message_zh), "{shown}: {message_zh}");
            assert!(message_zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "{message_zh}");
        }
    }
}
