//! Volumes (validateVolumes) and quantities.

use super::*;
use crate::quantity::Quantity;
use k8s_openapi::api::core::v1::Volume;

pub(super) fn validate_volume(vol: &Volume, path: &str, v: &mut V) {
    if vol.name.is_empty() {
        v.required(&format!("{path}.name"), "");
    } else {
        v.names(
            &format!("{path}.name"),
            &vol.name,
            names::dns1123_label(&vol.name),
        );
    }
    let others: [(&str, bool); 22] = [
        ("configMap", vol.config_map.is_some()),
        ("secret", vol.secret.is_some()),
        (
            "persistentVolumeClaim",
            vol.persistent_volume_claim.is_some(),
        ),
        ("projected", vol.projected.is_some()),
        ("downwardAPI", vol.downward_api.is_some()),
        ("ephemeral", vol.ephemeral.is_some()),
        ("image", vol.image.is_some()),
        ("nfs", vol.nfs.is_some()),
        ("iscsi", vol.iscsi.is_some()),
        ("csi", vol.csi.is_some()),
        (
            "awsElasticBlockStore",
            vol.aws_elastic_block_store.is_some(),
        ),
        ("azureDisk", vol.azure_disk.is_some()),
        ("azureFile", vol.azure_file.is_some()),
        ("cephfs", vol.cephfs.is_some()),
        ("cinder", vol.cinder.is_some()),
        ("fc", vol.fc.is_some()),
        ("flexVolume", vol.flex_volume.is_some()),
        ("gcePersistentDisk", vol.gce_persistent_disk.is_some()),
        ("gitRepo", vol.git_repo.is_some()),
        ("glusterfs", vol.glusterfs.is_some()),
        ("rbd", vol.rbd.is_some()),
        (
            "portworxVolume",
            vol.portworx_volume.is_some()
                || vol.photon_persistent_disk.is_some()
                || vol.quobyte.is_some()
                || vol.scale_io.is_some()
                || vol.storageos.is_some()
                || vol.vsphere_volume.is_some()
                || vol.flocker.is_some(),
        ),
    ];
    let mut kinds: Vec<&str> = Vec::new();
    if vol.empty_dir.is_some() {
        kinds.push("emptyDir");
    }
    if vol.host_path.is_some() {
        kinds.push("hostPath");
    }
    kinds.extend(others.iter().filter(|(_, p)| *p).map(|(n, _)| *n));
    match kinds.len() {
        0 => v.required(path, "must specify a volume type"),
        1 => {}
        _ => v.forbidden(
            &format!("{path}.{}", kinds[1]),
            "may not specify more than 1 volume type",
        ),
    }
    for k in &kinds {
        if *k != "emptyDir" && *k != "hostPath" {
            v.forbidden(
                &format!("{path}.{k}"),
                "podrun supports only emptyDir and hostPath volumes (no Kubernetes API server)",
            );
        }
    }
    if let Some(ed) = &vol.empty_dir {
        v.enum_value(
            &format!("{path}.emptyDir.medium"),
            ed.medium.as_ref().filter(|m| !m.is_empty()),
            &["Memory"],
        );
        if let Some(q) = &ed.size_limit {
            validate_quantity(&format!("{path}.emptyDir.sizeLimit"), &q.0, v);
        }
    }
    if let Some(hp) = &vol.host_path {
        let p = format!("{path}.hostPath.path");
        if hp.path.is_empty() {
            v.required(&p, "");
        } else if !hp.path.starts_with('/') {
            v.invalid(&p, quote(&hp.path), "must be an absolute path");
        } else if hp.path.split('/').any(|e| e == "..") {
            v.invalid(&p, quote(&hp.path), "must not contain '..'");
        }
        v.enum_value(
            &format!("{path}.hostPath.type"),
            hp.type_.as_ref().filter(|t| !t.is_empty()),
            &[
                "DirectoryOrCreate",
                "Directory",
                "FileOrCreate",
                "File",
                "Socket",
                "CharDevice",
                "BlockDevice",
            ],
        );
    }
}

pub(super) fn validate_quantity(path: &str, s: &str, v: &mut V) -> Option<Quantity> {
    match Quantity::parse(s) {
        Ok(q) if q.is_negative() => {
            v.invalid(path, quote(s), "must be greater than or equal to 0");
            None
        }
        Ok(q) => Some(q),
        Err(e) => {
            v.invalid(path, quote(s), e.to_string());
            None
        }
    }
}
