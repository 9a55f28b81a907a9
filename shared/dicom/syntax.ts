// Transfer syntaxes the box accepts, and how each one encodes the dataset around the pixel data.

export const TS = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
  DeflatedExplicitVRLittleEndian: '1.2.840.10008.1.2.1.99',
  ExplicitVRBigEndian: '1.2.840.10008.1.2.2',
  JpegBaseline: '1.2.840.10008.1.2.4.50',
  JpegExtended: '1.2.840.10008.1.2.4.51',
  JpegLossless: '1.2.840.10008.1.2.4.57',
  JpegLosslessSV1: '1.2.840.10008.1.2.4.70',
  JpegLsLossless: '1.2.840.10008.1.2.4.80',
  JpegLsNearLossless: '1.2.840.10008.1.2.4.81',
  Jpeg2000Lossless: '1.2.840.10008.1.2.4.90',
  Jpeg2000: '1.2.840.10008.1.2.4.91',
  HtJpeg2000Lossless: '1.2.840.10008.1.2.4.201',
  HtJpeg2000LosslessRpcl: '1.2.840.10008.1.2.4.202',
  HtJpeg2000: '1.2.840.10008.1.2.4.203',
  Rle: '1.2.840.10008.1.2.5',
  Mpeg2: '1.2.840.10008.1.2.4.100',
  Mpeg4: '1.2.840.10008.1.2.4.102',
  H265: '1.2.840.10008.1.2.4.107',
} as const;

/**
 * Accepted on association, in order of preference when an SCU proposes several in one context.
 * Encapsulated syntaxes come first so that a modality that can send compressed does so: the box
 * stores what it gets and never decodes on the receive path.
 */
export const ACCEPTED_TRANSFER_SYNTAXES: readonly string[] = [
  TS.JpegLsLossless,
  TS.HtJpeg2000Lossless,
  TS.HtJpeg2000LosslessRpcl,
  TS.Jpeg2000Lossless,
  TS.JpegLosslessSV1,
  TS.JpegLossless,
  TS.Rle,
  TS.JpegLsNearLossless,
  TS.HtJpeg2000,
  TS.Jpeg2000,
  TS.JpegBaseline,
  TS.JpegExtended,
  TS.Mpeg2,
  TS.Mpeg4,
  TS.H265,
  TS.DeflatedExplicitVRLittleEndian,
  TS.ExplicitVRLittleEndian,
  TS.ExplicitVRBigEndian,
  TS.ImplicitVRLittleEndian,
];

export interface DatasetEncoding {
  explicitVr: boolean;
  littleEndian: boolean;
  /** The dataset bytes are raw-deflated explicit VR little endian. */
  deflated: boolean;
}

export function encodingOf(transferSyntaxUid: string): DatasetEncoding {
  switch (transferSyntaxUid) {
    case TS.ImplicitVRLittleEndian:
      return { explicitVr: false, littleEndian: true, deflated: false };
    case TS.ExplicitVRBigEndian:
      return { explicitVr: true, littleEndian: false, deflated: false };
    case TS.DeflatedExplicitVRLittleEndian:
      return { explicitVr: true, littleEndian: true, deflated: true };
    default:
      // Every other standard syntax (native or encapsulated) is explicit VR little endian.
      return { explicitVr: true, littleEndian: true, deflated: false };
  }
}

/** m-box's own root for the Implementation Class UID written in every file meta header. */
export const IMPLEMENTATION_CLASS_UID = '2.25.104077770884655799238651382377211722287';
export const IMPLEMENTATION_VERSION_NAME = 'MBOX_0_1';
