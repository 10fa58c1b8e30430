"""tf_attnrec.encoders"""
